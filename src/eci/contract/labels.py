"""The container labels eci sets in the proxy and reads in the runtime and the proxy.

Both are eci's own: a client's create naming one is refused (the proxy sets them itself), and
an image carrying one proves nothing (see each reader). Stdlib-free: the runtime imports it.
"""

#: who asked for the container, ``uid:gid`` (see ``eci.contract.requester``)
REQUESTER_LABEL = "io.eci.requester"
#: the token of the Docker socket granted to the container (see ``eci.contract.grants``)
GRANT_LABEL = "io.eci.socket-grant"
