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
end)
