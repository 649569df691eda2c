-- The socket rules of the library (scripts/nlgate/rules/*.lua) through
-- nlgate.testing: each fires when it should, not when it should not, clears,
-- and takes its options.
local h = require "rules_helpers"

describe("rules.retrans_storm", function()
  -- two polls 2 s apart inside one 10 s window ([1000, 1010) on the clock)
  local function storm(p, totals)
    local socks = {}
    for i, t in ipairs(totals) do
      socks[i] = h.sock { cookie = 100 + i, dst = t.dst or "10.0.0.2", total_retrans = 0 }
    end
    h.poll(p, socks)
    p:advance("2s")
    for i, t in ipairs(totals) do socks[i].total_retrans = t.n end
    h.poll(p, socks)
    p:advance("8s") -- the window closes
    return socks
  end

  it("fires for a peer whose sockets retransmit together, per second over the window", function()
    local p = h.pipeline("retrans_storm")
    storm(p, { { n = 60 }, { n = 60 }, { n = 60, dst = "10.0.0.9" } })
    local a = h.alerts(p, "retrans_storm", "firing")
    assert.are.equal(1, #a)                 -- 10.0.0.2: 120 in 10 s; 10.0.0.9: 60
    assert.are.equal("10.0.0.2", a[1].key)
    assert.are.equal("10.0.0.2", a[1].peer)
    assert.are.equal(120, a[1].retransmits)
    assert.are.equal(12, a[1].value)
  end)

  it("stays quiet under the threshold and on a socket's first sight", function()
    local p = h.pipeline("retrans_storm")
    storm(p, { { n = 90 } })                -- 9 per second: under 10
    h.poll(p, { h.sock { cookie = 999, total_retrans = 100000 } }) -- first sight: no delta
    p:advance("10s")
    assert.are.equal(0, #h.alerts(p, "retrans_storm"))
  end)

  it("resolves once a window passes quietly", function()
    local p = h.pipeline("retrans_storm")
    local socks = storm(p, { { n = 500 } })
    assert.are.equal(1, #h.alerts(p, "retrans_storm", "firing"))
    h.poll(p, socks)                        -- same totals: no new retransmits
    p:advance("10s")
    local r = h.alerts(p, "retrans_storm", "resolved")
    assert.are.equal(1, #r)
    assert.are.equal("10.0.0.2", r[1].key)
    p:advance("30s")                        -- resolves once
    assert.are.equal(1, #h.alerts(p, "retrans_storm", "resolved"))
  end)

  it("takes its threshold, window and alert name", function()
    local p = h.pipeline("retrans_storm", "{ above = 1, window = '1m', name = 'rx' }", nil, 960)
    storm(p, { { n = 90 } })                -- 90 in a 60 s window: 1.5/s
    assert.are.equal(0, #h.alerts(p, "rx")) -- the minute has not ended
    p:advance("50s")
    assert.are.equal(1, #h.alerts(p, "rx", "firing"))
    assert.are.equal(0, #h.alerts(p, "retrans_storm"))
  end)
end)

describe("rules.rtt_outlier", function()
  -- polls of one peer's worst RTT, 2 s apart
  local function polls(p, rtts)
    for _, rtt in ipairs(rtts) do
      h.poll(p, { h.sock { cookie = 1, dst = "10.0.0.7", rtt_us = rtt },
                  h.sock { cookie = 2, dst = "10.0.0.7", rtt_us = rtt // 2 } })
      p:advance("2s")
    end
  end
  local base = { 20000, 21000, 19000, 20000, 20000 }

  it("fires when a peer's RTT is far above its own baseline, and resolves", function()
    local p = h.pipeline("rtt_outlier")
    polls(p, base)
    polls(p, { 100000 })
    local a = h.alerts(p, "rtt_outlier", "firing")
    assert.are.equal(1, #a)
    assert.are.equal("10.0.0.7", a[1].key)
    assert.are.equal(100000, a[1].rtt_us)
    assert.is_true(a[1].baseline_us >= 19000 and a[1].baseline_us <= 21000)
    assert.is_true(a[1].ratio > 4.5 and a[1].ratio < 5.5)
    polls(p, { 45000 })                     -- 2.2x: above clear (2), still firing
    assert.are.equal(0, #h.alerts(p, "rtt_outlier", "resolved"))
    polls(p, { 21000 })
    assert.are.equal(1, #h.alerts(p, "rtt_outlier", "resolved"))
  end)

  it("judges a peer only after min_samples polls, and never below min_rtt_us", function()
    local p = h.pipeline("rtt_outlier")
    polls(p, { 20000, 20000, 200000 })      -- 3 samples only
    assert.are.equal(0, #h.alerts(p, "rtt_outlier"))
    local q = h.pipeline("rtt_outlier")
    polls(q, { 1000, 1000, 1000, 1000, 1000, 4000 }) -- 4x, but 4 ms
    assert.are.equal(0, #h.alerts(q, "rtt_outlier"))
  end)

  it("takes factor, min_samples and min_rtt_us", function()
    local p = h.pipeline("rtt_outlier", "{ factor = 2, clear = 1.5, min_samples = 2 }")
    polls(p, { 20000, 20000, 50000 })
    assert.are.equal(1, #h.alerts(p, "rtt_outlier", "firing"))
    local q = h.pipeline("rtt_outlier", "{ min_rtt_us = 0 }")
    polls(q, { 1000, 1000, 1000, 1000, 1000, 4000 })
    assert.are.equal(1, #h.alerts(q, "rtt_outlier", "firing"))
  end)
end)

describe("rules.slow_rtt", function()
  it("fires on a peer's worst RTT, holds through the hysteresis band, resolves", function()
    local p = h.pipeline("slow_rtt")
    h.poll(p, { h.sock { dst = "10.0.0.3", rtt_us = 250000 }, h.sock { dst = "10.0.0.3", rtt_us = 1000 },
                h.sock { dst = "10.0.0.4", rtt_us = 120000 },
                h.sock { state = "SYN-SENT", dst = "10.0.0.5", rtt_us = 900000 } })
    local a = h.alerts(p, "slow_rtt", "firing")
    assert.are.equal(1, #a)
    assert.are.equal("10.0.0.3", a[1].key)
    assert.are.equal(250000, a[1].rtt_us)
    assert.are.equal(2, a[1].sockets)
    p:advance("2s")
    h.poll(p, { h.sock { dst = "10.0.0.3", rtt_us = 180000 } }) -- between clear and above
    assert.are.equal(0, #h.alerts(p, "slow_rtt", "resolved"))
    p:advance("2s")
    h.poll(p, { h.sock { dst = "10.0.0.3", rtt_us = 100000 } })
    assert.are.equal(1, #h.alerts(p, "slow_rtt", "resolved"))
  end)

  it("resolves a peer that has no socket left, and after `expire` without polls", function()
    local p = h.pipeline("slow_rtt")
    h.poll(p, { h.sock { dst = "10.0.0.3", rtt_us = 300000 } })
    p:advance("2s")
    h.poll(p, { h.sock { dst = "10.0.0.4", rtt_us = 1000 } })
    assert.are.equal(1, #h.alerts(p, "slow_rtt", "resolved"))
    -- a poll without records runs no batch handler: the threshold's expiry does it
    local q = h.pipeline("slow_rtt", "{ expire = '1m' }")
    h.poll(q, { h.sock { dst = "10.0.0.3", rtt_us = 300000 } })
    q:advance("50s")
    assert.are.equal(0, #h.alerts(q, "slow_rtt", "resolved"))
    q:advance("20s")
    local r = h.alerts(q, "slow_rtt", "resolved")
    assert.are.equal(1, #r)
    assert.are.equal("expired", r[1].reason)
  end)

  it("takes above, clear and peer", function()
    local p = h.pipeline("slow_rtt", "{ above = 50000, clear = 40000, peer = 'dport' }")
    h.poll(p, { h.sock { dport = 8443, rtt_us = 60000 } })
    local a = h.alerts(p, "slow_rtt", "firing")
    assert.are.equal(1, #a)
    assert.are.equal("8443", tostring(a[1].key))
  end)
end)

describe("rules.new_listener", function()
  it("learns the listening ports, then alerts once on a new one", function()
    local p = h.pipeline("new_listener")
    h.poll(p, { h.listener { sport = 22 }, h.listener { sport = 80 } })
    p:advance("5m")
    h.poll(p, { h.listener { sport = 22 }, h.listener { sport = 5432 } }) -- still learning
    p:advance("6m")
    h.poll(p, { h.listener { sport = 22 }, h.listener { sport = 8080, uid = 1000 },
                h.sock { sport = 9999 } })  -- an ESTAB socket is no listener
    local a = h.alerts(p, "new_listener", "firing")
    assert.are.equal(1, #a)
    assert.are.equal("tcp/8080", a[1].key)
    assert.are.equal(8080, a[1].port)
    assert.are.equal(1000, a[1].uid)
    p:advance("2s")
    h.poll(p, { h.listener { sport = 8080 } })
    assert.are.equal(1, #h.alerts(p, "new_listener")) -- once
  end)

  it("takes learn, allow and udp", function()
    local p = h.pipeline("new_listener", "{ learn = 0, allow = { 9000, '7000-7010' }, udp = true }")
    h.poll(p, { h.listener { sport = 22 } })
    p:advance("2s")
    h.poll(p, { h.listener { sport = 9000 }, h.listener { sport = 7005 },
                h.listener { proto = "udp", state = "UNCONN", sport = 5353, wqueue = 0 } })
    local a = h.alerts(p, "new_listener", "firing")
    assert.are.equal(1, #a)
    assert.are.equal("udp/5353", a[1].key)
  end)
end)

describe("rules.half_open", function()
  local function syns(port, n)
    local t = {}
    for i = 1, n do t[i] = h.sock { state = "SYN-RECV", sport = port, dport = 50000 + i } end
    return t
  end
  local function concat(a, b) for _, x in ipairs(b) do a[#a + 1] = x end return a end

  it("fires on SYN-RECV piling up on one port, and resolves", function()
    local p = h.pipeline("half_open")
    h.poll(p, concat(syns(80, 150), syns(443, 80)))
    local a = h.alerts(p, "half_open", "firing")
    assert.are.equal(1, #a)
    assert.are.equal("80", tostring(a[1].key))
    assert.are.equal(150, a[1].count)
    p:advance("2s")
    h.poll(p, syns(80, 70))                 -- above clear (50)
    assert.are.equal(0, #h.alerts(p, "half_open", "resolved"))
    p:advance("2s")
    h.poll(p, syns(80, 10))
    assert.are.equal(1, #h.alerts(p, "half_open", "resolved"))
  end)

  it("takes above and hold", function()
    local p = h.pipeline("half_open", "{ above = 5, hold = '4s' }")
    h.poll(p, syns(25, 6))
    p:advance("2s")
    h.poll(p, syns(25, 6))
    assert.are.equal(0, #h.alerts(p, "half_open")) -- held 2 s of 4
    p:advance("3s")
    h.poll(p, syns(25, 6))
    assert.are.equal(1, #h.alerts(p, "half_open", "firing"))
  end)
end)

describe("rules.accept_queue", function()
  it("fires near the backlog limit, holds with hysteresis, resolves", function()
    local p = h.pipeline("accept_queue")
    h.poll(p, { h.listener { sport = 80, rqueue = 120, wqueue = 128 },
                h.listener { sport = 81, rqueue = 10, wqueue = 128 } })
    local a = h.alerts(p, "accept_queue", "firing")
    assert.are.equal(1, #a)
    assert.are.equal("0.0.0.0:80", a[1].key)
    assert.are.equal(120, a[1].queued)
    assert.are.equal(128, a[1].limit)
    p:advance("2s")
    h.poll(p, { h.listener { sport = 80, rqueue = 100, wqueue = 128 } })
    assert.are.equal(0, #h.alerts(p, "accept_queue", "resolved"))
    p:advance("2s")
    h.poll(p, { h.listener { sport = 80, rqueue = 3, wqueue = 128 } })
    assert.are.equal(1, #h.alerts(p, "accept_queue", "resolved"))
  end)

  it("resolves a listener that went away, and takes above", function()
    local p = h.pipeline("accept_queue", "{ above = 0.25, clear = 0.1 }")
    h.poll(p, { h.listener { src = "::", family = "inet6", sport = 8080, rqueue = 40, wqueue = 128 } })
    local a = h.alerts(p, "accept_queue", "firing")
    assert.are.equal(1, #a)
    assert.are.equal("[::]:8080", a[1].key)
    p:advance("2s")
    h.poll(p, { h.listener { sport = 22 } })
    assert.are.equal(1, #h.alerts(p, "accept_queue", "resolved"))
  end)
end)

describe("rules.field_threshold", function()
  it("puts any field of a record against a threshold, per key", function()
    local p = h.pipeline("field_threshold",
      "{ name = 'rqueue', field = 'rqueue', above = 1000, clear = 100, key = { 'dst' } }")
    h.poll(p, { h.sock { dst = "10.1.1.1", rqueue = 5000 }, h.sock { dst = "10.1.1.2", rqueue = 10 } })
    local a = h.alerts(p, "rqueue", "firing")
    assert.are.equal(1, #a)
    assert.are.equal("10.1.1.1", a[1].key)
    assert.are.equal("10.1.1.1", a[1].dst)
    p:advance("2s")
    h.poll(p, { h.sock { dst = "10.1.1.1", rqueue = 0 } })
    assert.are.equal(1, #h.alerts(p, "rqueue", "resolved"))
  end)

  it("refuses a rule without name and field, and an unknown option", function()
    assert.has_error(function() h.pipeline("field_threshold", "{ above = 1 }") end)
    local ok, err = pcall(h.pipeline, "slow_rtt", "{ abov = 1 }")
    assert.is_false(ok)
    assert.truthy(tostring(err):find("slow_rtt: unknown option 'abov'", 1, true))
  end)
end)
