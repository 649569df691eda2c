-- my_rule_spec.lua: busted spec for my_rule.lua, with nlgate's test harness.
local testing = require "nlgate.testing"

-- n established connections of one user, then the poll ends
local function poll(p, uid, n)
  for i = 1, n do
    p:push("sock", { state = "ESTAB", proto = "tcp", src = "10.0.0.1", sport = 40000 + i,
                     dst = "10.0.0.2", dport = 443, uid = uid })
  end
  p:poll("sockets")
end

describe("my_rule", function()
  it("fires when one user holds too many connections, and resolves", function()
    local p = testing.pipeline("my_rule.lua", { env = { LIMIT = "10" } })
    poll(p, 1000, 12)
    local sent = p:sent("alert.too_many_conns")
    assert.are.equal(1, #sent)
    assert.are.equal("firing", sent[1].record.state)
    assert.are.equal(12, sent[1].record.connections)
    p:advance("5s")
    poll(p, 1000, 3)
    sent = p:sent("alert.too_many_conns")
    assert.are.equal(2, #sent)
    assert.are.equal("resolved", sent[2].record.state)
  end)

  it("stays quiet under the limit", function()
    local p = testing.pipeline("my_rule.lua", { env = { LIMIT = "10" } })
    poll(p, 1000, 9)
    poll(p, 1001, 9)
    assert.are.equal(0, #p:sent("alert."))
  end)
end)
