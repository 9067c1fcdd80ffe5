# Sourced by the benchmark scripts that put a server on "another host":
# make_netns NS HOST_DEV NS_DEV SUBNET creates network namespace NS joined
# to this one by a veth pair, this side SUBNET.1, the namespace's SUBNET.2
# (SUBNET as 10.233.0), and removes it on exit. Needs root (ip netns).
make_netns() {
    local ns=$1 here=$2 there=$3 subnet=$4
    NETNS_NAME=$ns
    trap 'ip netns del "$NETNS_NAME" 2>/dev/null || true' EXIT
    ip netns del "$ns" 2>/dev/null || true
    ip netns add "$ns"
    ip link add "$here" type veth peer name "$there"
    ip link set "$there" netns "$ns"
    ip addr add "$subnet.1/24" dev "$here"
    ip link set "$here" up
    ip -n "$ns" addr add "$subnet.2/24" dev "$there"
    ip -n "$ns" link set "$there" up
    ip -n "$ns" link set lo up
}
