-- rules.attach: several library rules and the script's own handlers on one
-- source; and the default pipeline (scripts/default.lua), built on them.
local testing = require "nlgate.testing"
local h = require "rules_helpers"

describe("rules.attach", function()
  it("runs every rule and the script's handlers on one source", function()
    local p = testing.pipeline("tests/spec/pipelines/rules_composed.lua", { clock = 1001 })
    h.poll(p, { h.sock { dst = "10.0.0.3", rtt_us = 150000 },
                h.listener { sport = 80, rqueue = 127, wqueue = 128 },
                h.sock { state = "SYN-RECV", sport = 80 }, h.sock { state = "SYN-RECV", sport = 80 },
                h.sock { state = "SYN-RECV", sport = 80 }, h.sock { state = "SYN-RECV", sport = 80 } })
    assert.are.equal(6, #p:sent("sock"))     -- the script's own each
    local polls = p:sent("poll")
    assert.are.equal(1, #polls)
    assert.are.equal(6, polls[1].record.records)
    assert.are.equal(1, #h.alerts(p, "slow_rtt", "firing"))
    assert.are.equal(1, #h.alerts(p, "accept_queue", "firing"))
    assert.are.equal(1, #h.alerts(p, "half_open", "firing"))
    -- the batch handler runs after the rules: alerts come before the poll frame
    local tags = {}
    for _, f in ipairs(p:sent("")) do tags[#tags + 1] = f.tag end
    assert.are.equal("poll", tags[#tags])
  end)
end)

describe("the default pipeline", function()
  it("feeds sockets, raises the library's alerts and sends a summary", function()
    local p = testing.pipeline("scripts/default.lua", {
      clock = 1001, env = { NLGATE_CT = "off", NLGATE_PLAIN = "1", TERM = "dumb" } })
    h.poll(p, { h.sock { dst = "10.0.0.3", rtt_us = 300000 },
                h.listener { sport = 80, rqueue = 128, wqueue = 128 } })
    assert.are.equal(2, #p:sent("sock"))
    assert.are.equal(1, #h.alerts(p, "slow_rtt", "firing"))
    assert.are.equal(1, #h.alerts(p, "accept_queue", "firing"))
    local s = p:sent("summary")
    assert.are.equal(1, #s)
    assert.are.equal(2, s[1].record.sockets)
    assert.are.equal(1, s[1].record.states.LISTEN)
  end)
end)
