-- An alert from a script that declares no output (tests/spec/alert_spec.lua):
-- it is still counted (and logged).
local gw = require "nlgate"

gw.alert { name = "started", severity = "info", message = "no outputs here" }
