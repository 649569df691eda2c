-- Shared by the hostile-script cases (test_hostile.sh): the gateway's own
-- work that every attack must leave running, and the bookkeeping the shell
-- side reads from the log.
--
--   * a 20 ms timer sends "tick" {n = sequence} to the feed at NLGT_FEED; the
--     sequence lives in gw.state so it goes on across a reload;
--   * H.attacks(list): one attack per timer call; each is expected to raise
--     out of its handler, so nlgate logs "error in timer handler: FILE:LINE:
--     MESSAGE" and a traceback. Before each, "ATTACK <name> :: <expected>" is
--     logged; "SURVIVED <name>" if the attack returned instead of raising;
--   * H.top(list): the same attacks at the top level, protected (an error
--     there would stop the script from starting): "TOP refused <name>" or
--     "TOP ALLOWED <name>" / "TOP MISMATCH <name>" (H.probe: any label);
--   * H.result(...): a "RESULT ..." line for the shell to check;
--   * H.with_gc(fn): a table with a __gc finalizer, if the sandbox lets one
--     be made at all.
local gw = require "nlgate"

local H = { gw = gw, dir = os.getenv("NLGT_DIR") }
H.feed = gw.unix { path = os.getenv("NLGT_FEED") }
gw.state.n = gw.state.n or 0
H.ticker = gw.every("20ms", function()
  gw.state.n = gw.state.n + 1
  H.feed:send("tick", { n = gw.state.n })
end)

function H.result(...)
  gw.log("RESULT", ...)
end

-- list: { {name, expected message substring, function}, ... }
-- opts.every: the interval between attacks (default 30ms); opts.done: called
-- once after the last one.
function H.attacks(list, opts)
  opts = opts or {}
  local i, t = 0, nil
  t = gw.every(opts.every or "30ms", function()
    i = i + 1
    local a = list[i]
    if not a then
      t:cancel()
      gw.log("ATTACKS DONE", #list)
      if opts.done then opts.done() end
      return
    end
    gw.log("ATTACK " .. a[1] .. " :: " .. a[2])
    a[3]()
    gw.log("SURVIVED " .. a[1])
  end)
  return t
end

-- H.probe(list, label): the attacks run protected where an unprotected raise
-- would end more than the attack (the top level, or a handler that must go
-- on): "<label> refused <name>: <error>", or "<label> ALLOWED <name>" /
-- "<label> MISMATCH <name>: <error>" when it did not raise as expected; then
-- "<label> DONE <count>".
function H.probe(list, label)
  for _, a in ipairs(list) do
    local ok, err = pcall(a[3])
    if ok then
      gw.log(label .. " ALLOWED " .. a[1])
    elseif not tostring(err):find(a[2], 1, true) then
      gw.log(label .. " MISMATCH " .. a[1] .. ": " .. tostring(err))
    else
      gw.log(label .. " refused " .. a[1] .. ": " .. tostring(err))
    end
  end
  gw.log(label .. " DONE", #list)
end

H.with_gc = require "hgc"

function H.top(list)
  H.probe(list, "TOP")
end

return H
