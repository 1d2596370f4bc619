"""`lbipam convert`: MetalLB's and Cilium's pools as IPPools (pure mapping, no client inside).

One module per source (`metallb`, `cilium`) maps that controller's objects; `dispatch` sends
each object to its source; `command` reads files or the cluster and prints.
"""
