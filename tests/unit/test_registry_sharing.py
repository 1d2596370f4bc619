"""Sharing an address across namespaces: only where both sides consent
(lbipam.io/sharing-cross-namespace), ports apart, the older keeping it when consent goes."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from lbipam.ipam.registry import Registry
from lbipam.ipam.requests import Port, Reason, ServiceKey, ServiceRequest
from tests.unit.test_registry import DNS, HTTP, HTTPS, again, allocated, pool, registry, service

SSH = Port(22, "TCP")


def shop() -> Registry:
    return registry(pool("public", "10.0.0.0/29"))


def sharer(
    name: str, namespace: str, created: int, ports: set[Port], *consent: str, **fields: Any
) -> ServiceRequest:
    """A Service under sharing key "edge" consenting to the namespaces given."""
    return service(
        name,
        created,
        namespace=namespace,
        sharing_key="edge",
        ports=frozenset(ports),
        share_with=frozenset(consent),
        **fields,
    )


def test_two_namespaces_that_consent_to_each_other_share_one_address() -> None:
    reg = shop()
    web = reg.ensure(sharer("web", "shop", 0, {HTTP}, "blog"))
    feed = reg.ensure(sharer("feed", "blog", 1, {HTTPS}, "shop"))
    assert web.addresses == feed.addresses == ("10.0.0.0",)
    assert reg.owners_of("10.0.0.0") == (ServiceKey("shop", "web"), ServiceKey("blog", "feed"))
    assert allocated(reg, "public") == 1
    reg.check()


def test_consent_on_one_side_only_gives_each_its_own_address() -> None:
    for shop_consents, blog_consents in ((("blog",), ()), ((), ("shop",)), (("blog",), ("x",))):
        reg = shop()
        web = reg.ensure(sharer("web", "shop", 0, {HTTP}, *shop_consents))
        feed = reg.ensure(sharer("feed", "blog", 1, {HTTPS}, *blog_consents))
        assert (web.addresses, feed.addresses) == (("10.0.0.0",), ("10.0.0.1",))
        assert feed.reason is Reason.ALLOCATED


def test_a_star_consents_to_every_namespace() -> None:
    reg = shop()
    web = reg.ensure(sharer("web", "shop", 0, {HTTP}, "*"))
    feed = reg.ensure(sharer("feed", "blog", 1, {HTTPS}, "*"))
    mail = reg.ensure(sharer("mail", "post", 2, {SSH}, "shop", "blog"))
    assert web.addresses == feed.addresses == mail.addresses == ("10.0.0.0",)


def test_a_newcomer_joins_only_an_address_all_of_whose_holders_consent() -> None:
    """shop/web and blog/feed share; post/mail consents to shop only, so blog/feed's refusal
    keeps it off their address: it gets its own."""
    reg = shop()
    reg.ensure(sharer("web", "shop", 0, {HTTP}, "*"))
    reg.ensure(sharer("feed", "blog", 1, {HTTPS}, "shop"))
    mail = reg.ensure(sharer("mail", "post", 2, {SSH}, "shop"))
    assert (mail.addresses, mail.reason) == (("10.0.0.1",), Reason.ALLOCATED)
    reg.check()


def test_one_key_used_apart_in_many_namespaces_never_mixes() -> None:
    reg = shop()
    outcomes = [reg.ensure(sharer("web", ns, n, {HTTP})) for n, ns in enumerate(("a", "b", "c"))]
    assert [o.addresses for o in outcomes] == [("10.0.0.0",), ("10.0.0.1",), ("10.0.0.2",)]


def test_ports_conflict_across_namespaces_as_within_one() -> None:
    reg = shop()
    reg.ensure(sharer("web", "shop", 0, {HTTP, HTTPS}, "blog"))
    clash = reg.ensure(sharer("feed", "blog", 1, {HTTPS}, "shop"))
    assert (clash.addresses, clash.reason, clash.message) == (
        (),
        Reason.PORT_CONFLICT,
        '10.0.0.0 is shared under sharing key "edge" with Service shop/web, '
        "which also uses port 443/TCP",
    )


def test_asking_for_the_address_of_a_service_that_does_not_consent_is_refused_saying_so() -> None:
    reg = shop()
    reg.ensure(sharer("web", "shop", 0, {HTTP}))
    refused = reg.ensure(sharer("feed", "blog", 1, {HTTPS}, "shop", requested_ips=("10.0.0.0",)))
    assert (refused.addresses, refused.reason, refused.message) == (
        (),
        Reason.ADDRESS_IN_USE,
        '10.0.0.0 is already used by Service shop/web; sharing key "edge" spans namespaces '
        'only where both sides consent: Service shop/web does not list namespace "blog" in '
        "lbipam.io/sharing-cross-namespace",
    )
    both = reg.ensure(sharer("mail", "post", 2, {SSH}, requested_ips=("10.0.0.0",)))
    assert both.message.endswith(
        'Service post/mail does not list namespace "shop" and Service shop/web does not list '
        'namespace "post" in lbipam.io/sharing-cross-namespace'
    )


def test_withdrawn_consent_moves_the_younger_and_tells_it_why() -> None:
    """Either side may withdraw: the older keeps the address, the younger moves, with the
    reason in its Warning."""
    for withdrawing in ("older", "younger"):
        reg = shop()
        web = sharer("web", "shop", 0, {HTTP}, "blog")
        feed = sharer("feed", "blog", 1, {HTTPS}, "shop")
        first_web, first_feed = reg.ensure(web), reg.ensure(feed)
        assert first_web.addresses == first_feed.addresses == ("10.0.0.0",)

        if withdrawing == "older":
            kept = again(reg, replace(web, share_with=frozenset()), first_web)
            assert (kept.addresses, kept.displaced) == (("10.0.0.0",), (feed.key,))
            moved = again(reg, feed, first_feed)
            lacking = 'Service shop/web does not list namespace "blog"'
        else:
            moved = again(reg, replace(feed, share_with=frozenset()), first_feed)
            lacking = 'Service blog/feed does not list namespace "shop"'
        assert (moved.addresses, moved.released) == (("10.0.0.1",), ("10.0.0.0",))
        assert moved.revoked == {
            "10.0.0.0": '10.0.0.0 is held by the older Service shop/web; sharing key "edge" '
            f"spans namespaces only where both sides consent: {lacking} in "
            "lbipam.io/sharing-cross-namespace"
        }
        assert reg.owners_of("10.0.0.0") == (web.key,)
        reg.check()


def test_consent_given_later_brings_the_younger_to_the_older_ones_address() -> None:
    reg = shop()
    web = sharer("web", "shop", 0, {HTTP})
    feed = sharer("feed", "blog", 1, {HTTPS}, "shop")
    first_web, first_feed = reg.ensure(web), reg.ensure(feed)
    assert (first_web.addresses, first_feed.addresses) == (("10.0.0.0",), ("10.0.0.1",))

    consenting = again(reg, replace(web, share_with=frozenset({"blog"})), first_web)
    assert (consenting.addresses, consenting.followers) == (("10.0.0.0",), (feed.key,))
    followed = again(reg, feed, first_feed)
    assert (followed.addresses, followed.released) == (("10.0.0.0",), ("10.0.0.1",))
    assert followed.revoked == {
        "10.0.0.1": '10.0.0.1: the Services sharing key "edge" moved to 10.0.0.0'
    }


def test_only_services_that_consent_follow_a_moving_sharer() -> None:
    reg = shop()
    web = sharer("web", "shop", 0, {HTTP}, "blog")
    reg.ensure(sharer("feed", "blog", 1, {HTTPS}, "shop"))
    reg.ensure(sharer("lone", "post", 2, {DNS}))
    moved = reg.ensure(replace(web, requested_ips=("10.0.0.5",)))
    assert moved.followers == (ServiceKey("blog", "feed"),)


def test_a_shared_address_counts_in_each_namespace_that_holds_it() -> None:
    reg = registry(pool("public", "10.0.0.0/29", per_namespace_limit=1))
    reg.ensure(sharer("web", "shop", 0, {HTTP}, "blog"))
    reg.ensure(sharer("own", "blog", 1, {HTTP}))
    refused = reg.ensure(sharer("feed", "blog", 2, {HTTPS}, "shop"))
    assert refused.reason is Reason.NAMESPACE_LIMIT_REACHED
    assert reg.pool_summary("public").over_limit == ()
    reg.release(ServiceKey("blog", "own"), 0.0)
    joined = reg.ensure(sharer("feed", "blog", 2, {HTTPS}, "shop"))
    assert joined.addresses == ("10.0.0.0",)
    reg.release(ServiceKey("shop", "web"), 0.0)
    reg.check()


def test_a_restart_restores_a_pair_that_consents_and_splits_one_that_does_not() -> None:
    reg = shop()
    web = sharer("web", "shop", 0, {HTTP}, "blog", held=("10.0.0.0",))
    feed = sharer("feed", "blog", 1, {HTTPS}, "shop", held=("10.0.0.0",))
    mail = sharer("mail", "post", 2, {SSH}, "*", held=("10.0.0.0",))
    assert reg.rebuild([mail, feed, web]) == (mail.key,)
    assert reg.owners_of("10.0.0.0") == (web.key, feed.key)
    reg.check()
