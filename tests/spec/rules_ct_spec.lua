-- The conntrack and flow rules of the library through nlgate.testing:
-- table pressure, long-lived connections, ports outside an allow-list, top
-- talkers (flow records and conntrack counters).
local h = require "rules_helpers"

local function push_ct(p, events)
  for _, e in ipairs(events) do p:push("ct", e) end
  p:poll("conntrack")
end

describe("rules.ct_pressure", function()
  it("fires when the table passes a share of its limit, and resolves", function()
    local p = h.pipeline("ct_pressure", "{ count = 'events', max = 10 }", "conntrack")
    local flows = {}
    for i = 1, 9 do flows[i] = h.ct { id = i } end
    push_ct(p, flows)
    p:advance("10s")
    local a = h.alerts(p, "ct_pressure", "firing")
    assert.are.equal(1, #a)
    assert.are.equal("host", a[1].key)
    assert.are.equal(9, a[1].flows)
    assert.are.equal(10, a[1].max)
    assert.are.equal(90, a[1].percent)
    push_ct(p, { h.ct { id = 1, event = "destroy" } })
    p:advance("10s")                         -- 8 of 10: above clear (0.7)
    assert.are.equal(0, #h.alerts(p, "ct_pressure", "resolved"))
    push_ct(p, { h.ct { id = 2, event = "destroy" }, h.ct { id = 3, event = "destroy" } })
    p:advance("10s")
    assert.are.equal(1, #h.alerts(p, "ct_pressure", "resolved"))
  end)

  it("stays quiet under the threshold, and without a known limit", function()
    local p = h.pipeline("ct_pressure", "{ count = 'events', max = 100 }", "conntrack")
    push_ct(p, { h.ct {}, h.ct {}, h.ct {} })
    p:advance("1m")
    assert.are.equal(0, #h.alerts(p, "ct_pressure"))
    local q = h.pipeline("ct_pressure", "{ count = 'events' }", "conntrack")
    push_ct(q, { h.ct {}, h.ct {}, h.ct {} })
    q:advance("1m")
    assert.are.equal(0, #h.alerts(q, "ct_pressure"))
  end)

  it("takes above, check and key, and refuses a bad count", function()
    local p = h.pipeline("ct_pressure",
      "{ count = 'events', max = 10, above = 0.2, clear = 0.1, check = '1m', key = 'edge' }",
      "conntrack")
    push_ct(p, { h.ct {}, h.ct {}, h.ct {} })
    p:advance("30s")
    assert.are.equal(0, #h.alerts(p, "ct_pressure"))
    p:advance("30s")
    local a = h.alerts(p, "ct_pressure", "firing")
    assert.are.equal(1, #a)
    assert.are.equal("edge", a[1].key)
    assert.has_error(function() h.pipeline("ct_pressure", "{ count = 'guess' }", "conntrack") end)
  end)
end)

describe("rules.long_lived", function()
  it("alerts once on a flow older than the age, from its start timestamp", function()
    local p = h.pipeline("long_lived", nil, "conntrack", 10000)
    push_ct(p, { h.ct { id = 7, start_ns = (10000 - 7200) * 1000000000, orig_dport = 22 },
                 h.ct { id = 8 } })         -- no timestamp: young as far as we know
    p:advance("1m")
    local a = h.alerts(p, "long_lived", "firing")
    assert.are.equal(1, #a)
    assert.are.equal("ct/7", a[1].key)
    assert.are.equal("info", a[1].severity)
    assert.are.equal(22, a[1].dport)
    assert.is_true(a[1].age >= 7200)
    p:advance("5m")
    assert.are.equal(1, #h.alerts(p, "long_lived"))
    p:advance("1h")                          -- id 8 has now been seen for an hour
    a = h.alerts(p, "long_lived", "firing")
    assert.are.equal(2, #a)
    assert.are.equal("ct/8", a[2].key)
  end)

  it("forgets a flow that ended", function()
    local p = h.pipeline("long_lived", "{ age = '10m' }", "conntrack")
    push_ct(p, { h.ct { id = 5 } })
    p:advance("5m")
    push_ct(p, { h.ct { id = 5, event = "destroy" } })
    p:advance("20m")
    assert.are.equal(0, #h.alerts(p, "long_lived"))
  end)

  it("ages established sockets from their first sight, and forgets closed ones", function()
    local p = h.pipeline("long_lived", "{ age = '10s', check = '5s' }")
    local old, gone = h.sock { cookie = 51 }, h.sock { cookie = 52 }
    h.poll(p, { old, gone, h.sock { cookie = 53, state = "TIME-WAIT" } })
    p:advance("2s")
    h.poll(p, { old })                       -- 52 closed
    for _ = 1, 6 do p:advance("2s"); h.poll(p, { old }) end
    p:advance("5s")
    local a = h.alerts(p, "long_lived", "firing")
    assert.are.equal(1, #a)
    assert.are.equal("sock/51", a[1].key)
    assert.are.equal("sock", a[1].kind)
  end)
end)

describe("rules.port_allow", function()
  it("alerts on a new flow to a port outside the allow-list, once per destination", function()
    local p = h.pipeline("port_allow", nil, "conntrack")
    push_ct(p, { h.ct { orig_dport = 6667, orig_dst = "198.51.100.7" },
                 h.ct { orig_dport = 6667, orig_dst = "198.51.100.7" },
                 h.ct { orig_dport = 443 }, h.ct { proto = "udp", orig_dport = 53 },
                 h.ct { proto = "icmp", orig_dport = 0 },
                 h.ct { event = "destroy", orig_dport = 25 } })
    local a = h.alerts(p, "port_allow", "firing")
    assert.are.equal(1, #a)
    assert.are.equal("tcp/198.51.100.7:6667", a[1].key)
    assert.are.equal(6667, a[1].dport)
  end)

  it("takes allow (ports and ranges) and protos, on flow records too", function()
    local p = h.pipeline("port_allow", "{ allow = { 443, '6000-7000' }, protos = { 'udp' } }", "flows")
    p:push("flow", h.flow { dport = 6667, proto = "udp" })
    p:push("flow", h.flow { dport = 25 })                  -- tcp: not watched
    p:push("flow", h.flow { dport = 1900, proto = "udp", dst = "239.255.255.250" })
    p:poll("packets")
    local a = h.alerts(p, "port_allow", "firing")
    assert.are.equal(1, #a)
    assert.are.equal("udp/239.255.255.250:1900", a[1].key)
  end)
end)

describe("rules.top_talkers", function()
  local function reports(p, tag)
    local out = {}
    for _, f in ipairs(p:sent(tag or "top_talkers")) do out[#out + 1] = f.record end
    return out
  end

  it("reports the heaviest sources of flow bytes every window", function()
    local p = h.pipeline("top_talkers", "{ outputs = feed, n = 2 }", "flows", 1020)
    p:push("flow", h.flow { src = "10.0.0.1", bytes = 5000 })
    p:push("flow", h.flow { src = "10.0.0.2", bytes = 9000 })
    p:push("flow", h.flow { src = "10.0.0.1", bytes = 7000 })
    p:push("flow", h.flow { src = "10.0.0.3", bytes = 100 })
    p:poll("packets")
    p:advance("59s")
    assert.are.equal(0, #reports(p))        -- the minute has not ended
    p:advance("1s")
    local r = reports(p)
    assert.are.equal(1, #r)
    assert.are.equal(2, #r[1].top)
    assert.are.equal("10.0.0.1", r[1].top[1].key)
    assert.are.equal(12000, r[1].top[1].bytes)
    assert.are.equal("10.0.0.2", r[1].top[2].key)
    assert.are.equal(1020, r[1].window_start)
    assert.are.equal(1080, r[1].window_end)
    p:advance("1m")                          -- an empty window reports an empty top
    r = reports(p)
    assert.are.equal(2, #r)
    assert.are.same({}, r[2].top)
  end)

  it("counts conntrack DESTROY counters, by pair, and alerts past `above`", function()
    local p = h.pipeline("top_talkers",
      "{ outputs = { feed }, by = 'pair', tag = 'talk', window = '10s', above = 1000000 }",
      "conntrack", 1000)
    push_ct(p, { h.ct { event = "destroy", orig_bytes = 2000000, reply_bytes = 10 },
                 h.ct { event = "new", orig_bytes = 9000000 },  -- counted at its end
                 h.ct { event = "destroy", orig_dst = "10.0.0.5", orig_bytes = 10, reply_bytes = 20 } })
    p:advance("10s")
    local r = reports(p, "talk")
    assert.are.equal(1, #r)
    assert.are.equal("10.0.0.1 -> 10.0.0.2", r[1].top[1].key)
    assert.are.equal(2000010, r[1].top[1].bytes)
    assert.are.equal(30, r[1].top[2].bytes)
    local a = h.alerts(p, "top_talkers", "firing")
    assert.are.equal(1, #a)
    assert.are.equal("10.0.0.1 -> 10.0.0.2", a[1].key)
    p:advance("10s")
    assert.are.equal(1, #h.alerts(p, "top_talkers", "resolved"))
  end)

  it("refuses a bad `by`", function()
    assert.has_error(function() h.pipeline("top_talkers", "{ by = 'color' }", "flows") end)
  end)
end)
