-- The shipped rule library (scripts/nlgate/rules.lua) on plain tables, the
-- way a script's own tests would exercise it.
local rules = require "nlgate.rules"

describe("nlgate.rules", function()
  it("flags a listener whose accept queue is nearly full", function()
    assert.truthy(rules.backlog { state = "LISTEN", rqueue = 120, wqueue = 128 })
    assert.is_nil(rules.backlog { state = "LISTEN", rqueue = 10, wqueue = 128 })
    assert.is_nil(rules.backlog { state = "ESTAB", rqueue = 500, wqueue = 128 })
  end)

  it("flags slow RTT on established sockets only", function()
    assert.are.equal("rtt 250.0 ms", rules.slow_rtt { state = "ESTAB", rtt_us = 250000 })
    assert.is_nil(rules.slow_rtt { state = "ESTAB", rtt_us = 1000 })
    assert.is_nil(rules.slow_rtt { state = "SYN-SENT", rtt_us = 900000 })
    assert.is_nil(rules.slow_rtt { state = "UNCONN" }) -- UDP: no tcp_info
  end)

  it("flags retransmit bursts between polls, per socket", function()
    local seen = {}
    assert.is_nil(rules.retrans({ cookie = 7, total_retrans = 3 }, seen))
    assert.is_nil(rules.retrans({ cookie = 7, total_retrans = 8 }, seen))
    assert.are.equal("20 retransmits since last poll",
                     rules.retrans({ cookie = 7, total_retrans = 28 }, seen))
    assert.is_nil(rules.retrans({ cookie = 8, total_retrans = 100 }, seen)) -- first sight
    assert.are.equal(28, seen[7])
  end)

  it("keeps the top n, largest first", function()
    local top = {}
    for _, v in ipairs { 5, 1, 9, 3, 7, 9, 2 } do
      rules.top(top, 3, { v = v }, function(r) return r.v end)
    end
    assert.are.same({ 9, 9, 7 }, { top[1].v, top[2].v, top[3].v })
    rules.top(top, 3, { v = 1 }, function() return nil end) -- no key: ignored
    assert.are.equal(3, #top)
  end)

  it("has the helpers rule modules share: durations, ports, endpoints, options", function()
    assert.are.equal(0.5, rules.seconds("500ms"))
    assert.are.equal(7200, rules.seconds("2h"))
    assert.are.equal(90, rules.seconds(90))
    assert.has_error(function() rules.seconds("soon") end)
    local allowed = rules.ports { 22, "8000-8099" }
    assert.is_true(allowed(22))
    assert.is_true(allowed(8050))
    assert.is_false(allowed(8100))
    assert.is_true(rules.ports("53, 100-110")(105))
    assert.has_error(function() rules.ports { "ssh" } end)
    assert.are.equal("[::1]:80", rules.endpoint("::1", 80))
    assert.are.equal("10.0.0.1:80", rules.endpoint("10.0.0.1", 80))
    local o = rules.options("r", { above = 10, hold = false }, { above = 3, severity = "error" })
    assert.are.same({ above = 3, hold = false, name = "r", severity = "error" }, o)
    assert.has_error(function() rules.options("r", { above = 10 }, { abov = 3 }) end,
                     "r: unknown option 'abov'")
  end)
end)
