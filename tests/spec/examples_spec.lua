-- The example pipelines with logic (examples/*.lua), through nlgate.testing:
-- the same files `nlgate run` runs, on fake sources.
local testing = require "nlgate.testing"

local function sock(t)
  local r = { family = "inet", proto = "tcp", state = "ESTAB", src = "10.0.0.1", sport = 40000,
              dst = "10.0.0.2", dport = 443 }
  for k, v in pairs(t) do r[k] = v end
  return r
end

describe("examples/slow_peers.lua", function()
  it("raises alert.slow_rtt for a slow peer and resolves it", function()
    local p = testing.pipeline("examples/slow_peers.lua", { clock = 1001, env = { SLOW_MS = "100" } })
    p:push("sock", sock { dst = "192.0.2.1", rtt_us = 150000 })
    p:push("sock", sock { dst = "192.0.2.2", rtt_us = 20000 })
    p:poll("sockets")
    local a = p:sent("alert.slow_rtt")
    assert.are.equal(1, #a)
    assert.are.equal("firing", a[1].record.state)
    assert.are.equal("192.0.2.1", a[1].record.key)
    p:advance("2s")
    p:push("sock", sock { dst = "192.0.2.1", rtt_us = 50000 })
    p:poll("sockets")
    a = p:sent("alert.slow_rtt")
    assert.are.equal(2, #a)
    assert.are.equal("resolved", a[2].record.state)
  end)

  it("waits HOLD before firing", function()
    local p = testing.pipeline("examples/slow_peers.lua",
                               { clock = 1001, env = { SLOW_MS = "100", HOLD = "5s" } })
    for _ = 1, 3 do
      p:push("sock", sock { rtt_us = 150000 })
      p:poll("sockets")
      p:advance("2s")
    end
    assert.are.equal(0, #p:sent("alert.slow_rtt")) -- held 4 s
    p:push("sock", sock { rtt_us = 150000 })
    p:poll("sockets")
    assert.are.equal(1, #p:sent("alert.slow_rtt"))
  end)
end)

describe("examples/ct_pressure.lua", function()
  it("checks the table against a limit every CHECK, and sends the usage", function()
    local p = testing.pipeline("examples/ct_pressure.lua",
                               { clock = 1000, env = { CT_MAX = "10", CHECK = "5s" } })
    p:advance("5s")
    local usage = p:sent("ct.usage")
    assert.are.equal(1, #usage)
    -- the fake source keeps no table: nothing is over the limit
    assert.are.equal(0, #p:sent("alert.ct_pressure"))
  end)
end)

describe("examples/top_talkers.lua", function()
  it("sends the top sources by bytes every minute", function()
    local p = testing.pipeline("examples/top_talkers.lua", { clock = 960, env = { N = "2" } })
    local function flow(src, bytes)
      p:push("flow", { proto = "udp", family = "inet", src = src, sport = 5000, dst = "10.9.9.9",
                       dport = 53, packets = 1, bytes = bytes, end_reason = "idle" })
    end
    flow("10.0.0.1", 300); flow("10.0.0.2", 700); flow("10.0.0.1", 500); flow("10.0.0.3", 10)
    p:poll("packets")
    p:advance("1m")
    local r = p:sent("top_talkers")
    assert.are.equal(1, #r)
    local top = r[1].record.top
    assert.are.equal(2, #top)
    assert.are.same({ "10.0.0.1", 800 }, { top[1].key, top[1].bytes })
    assert.are.same({ "10.0.0.2", 700 }, { top[2].key, top[2].bytes })
  end)

  it("counts conntrack's bytes with SOURCE=conntrack", function()
    local p = testing.pipeline("examples/top_talkers.lua",
                               { clock = 960, env = { SOURCE = "conntrack", BY = "dport" } })
    p:push("ct", { event = "destroy", id = 1, family = "inet", proto = "tcp", orig_src = "10.0.0.1",
                   orig_dst = "10.0.0.2", orig_sport = 40000, orig_dport = 443,
                   orig_bytes = 1000, reply_bytes = 50000 })
    p:poll("conntrack")
    p:advance("1m")
    local r = p:sent("top_talkers")
    assert.are.equal(1, #r)
    assert.are.equal(443, r[1].record.top[1].key)
    assert.are.equal(51000, r[1].record.top[1].bytes)
  end)
end)

describe("examples/my_rule.lua", function()
  it("is the README's user rule; its own spec is examples/spec/my_rule_spec.lua", function()
    -- run by tests/integration/test_user_rule.sh exactly as the README says;
    -- here only that it loads as a pipeline
    local p = testing.pipeline("examples/my_rule.lua", { clock = 0, env = { LIMIT = "2" } })
    for i = 1, 3 do p:push("sock", sock { sport = 40000 + i, uid = 7 }) end
    p:poll("sockets")
    assert.are.equal(1, #p:sent("alert.too_many_conns"))
  end)
end)
