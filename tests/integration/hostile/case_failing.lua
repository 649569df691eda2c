-- Case 10: a handler that fails every time is disabled after 100 failures in
-- a row, with one log line, and listed in gw.stats().script.disabled; one
-- that fails 99 times in a row and then succeeds is not; the others go on.
local H = require "hlib"
local gw = H.gw
local port = assert(tonumber(os.getenv("NLGT_PORT")), "NLGT_PORT")

local always, each, flaky, other = 0, 0, 0, 0
gw.every("10ms", function()
  always = always + 1
  error("always fails " .. always)
end)
gw.every("10ms", function()
  flaky = flaky + 1
  if flaky % 100 ~= 0 then error("flaky fails " .. flaky) end
end)
gw.every("10ms", function() other = other + 1 end)
local src = gw.sockets { every = "10ms", proto = "tcp", states = "listen", sport = port }
src:each(function() each = each + 1 error("each fails " .. each) end)

-- Report once the flaky one and the plain one have each run 200 times past
-- the point where the failing ones were disabled (or after 20 s): a state, not
-- a fixed time, so a slow machine gets the same answer.
local ticks, reported = 0, false
gw.every("100ms", function()
  ticks = ticks + 1
  local st = gw.stats().script
  if reported or ((#st.disabled < 2 or flaky <= 200 or other <= 200) and ticks < 200) then
    return
  end
  reported = true
  local disabled = {}
  for _, name in ipairs(st.disabled) do disabled[#disabled + 1] = name end
  table.sort(disabled)
  H.result("FAILING", always, each, flaky > 200, other > 200, table.concat(disabled, ","),
           src:stats().handler_errors)
end)
