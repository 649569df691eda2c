"""The key of a flow in `nlgate watch conntrack` records, as ct_keys in
flood.sh prints it from `conntrack -L -o id`: "ID PROTO SRC DST SPORT DPORT"
of the original tuple (- for no ports). The conntrack id alone is a 32-bit
hash that two flows of a flood can share."""


def key(r):
    sp = r.get("orig_sport", "-")
    dp = r.get("orig_dport", "-")
    return f'{r["id"]} {r["proto"]} {r["orig_src"]} {r["orig_dst"]} {sp} {dp}'
