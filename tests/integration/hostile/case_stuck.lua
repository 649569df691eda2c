-- Case 9: a handler stuck inside a C function (a pattern match that takes
-- forever) cannot be stopped by the instruction budget: the watchdog names
-- it, and SIGTERM still ends the gateway within 2 s. NLGT_VARIANT=lua: a Lua
-- loop instead, with the budget off (--budget 0).
local H = require "hlib"
local gw = H.gw
local lua = os.getenv("NLGT_VARIANT") == "lua"

gw.after("200ms", function()
  gw.log("ATTACK stuck")
  if lua then
    while true do end
  else
    string.rep("a", 200000):find(".-.-.-.-.-b")
  end
  gw.log("SURVIVED stuck")
end)
