#!/bin/bash
# A user's rule and its spec exactly as the README's "Writing your own rule"
# tells it: the two files are taken from the README's text (and must be
# examples/my_rule.lua and examples/spec/my_rule_spec.lua byte for byte), put
# in a directory of their own outside the source tree, and the README's
# command block is run there as printed, with NLGATE_SRC and NLGATE_BUILD
# set as it asks. busted must pass the spec and `nlgate check` the rule.
. "$(dirname "$0")/lib.sh"

nlg_require_cmd busted
nlg_require_nlgate
nlg_tmpdir
README=$NLG_SRC/README.md
BUILD=${NLGATE_BUILD:-$(dirname "$NLGATE")}

# The fenced block after the marker line `<!-- NAME -->`, without its fences.
block() {
	awk -v m="<!-- $1 -->" '
		$0 == m { found = 1; next }
		found == 1 && /^```/ { found = 2; next }
		found == 2 && /^```$/ { exit }
		found == 2 { print }
	' "$README"
}

mkdir -p "$NLG_TMP/my-rules"
block examples/my_rule.lua >"$NLG_TMP/my-rules/my_rule.lua"
block examples/spec/my_rule_spec.lua >"$NLG_TMP/my-rules/my_rule_spec.lua"
block user-rule-command >"$NLG_TMP/command.sh"
[ -s "$NLG_TMP/my-rules/my_rule.lua" ] && [ -s "$NLG_TMP/my-rules/my_rule_spec.lua" ] &&
	[ -s "$NLG_TMP/command.sh" ] || nlg_fail "the README lost a block of 'Writing your own rule'"
cmp -s "$NLG_TMP/my-rules/my_rule.lua" "$NLG_SRC/examples/my_rule.lua" ||
	nlg_fail "README's my_rule.lua differs from examples/my_rule.lua: $(diff "$NLG_TMP/my-rules/my_rule.lua" "$NLG_SRC/examples/my_rule.lua")"
cmp -s "$NLG_TMP/my-rules/my_rule_spec.lua" "$NLG_SRC/examples/spec/my_rule_spec.lua" ||
	nlg_fail "README's my_rule_spec.lua differs from examples/spec/my_rule_spec.lua: $(diff "$NLG_TMP/my-rules/my_rule_spec.lua" "$NLG_SRC/examples/spec/my_rule_spec.lua")"

# A sanitized build's nlgate.so needs its runtimes preloaded into the plain
# Lua interpreter busted runs in (as tests/tests.cmake does for spec/busted);
# that is the build's need, not a step of the README's.
if ldd "$BUILD/nlgate.so" 2>/dev/null | grep -q libasan; then
	export LD_PRELOAD="$(cc -print-file-name=libasan.so) $(cc -print-file-name=libubsan.so)"
	export ASAN_OPTIONS=detect_leaks=0
fi

# as a user's shell would: no LUA_PATH of the test harness's, the README's own
(
	cd "$NLG_TMP/my-rules" || exit 1
	unset LUA_PATH LUA_CPATH
	export NLGATE_SRC=$NLG_SRC NLGATE_BUILD=$BUILD
	bash -e "$NLG_TMP/command.sh"
) >"$NLG_TMP/out" 2>&1 || nlg_fail "the README's commands failed: $(tail -n 30 "$NLG_TMP/out")"
sed 's/\x1b\[[0-9;]*m//g' "$NLG_TMP/out" | grep -Eq '2 successes / 0 failures / 0 errors' ||
	nlg_fail "busted did not pass the README's two tests: $(tail -n 20 "$NLG_TMP/out")"

# and a spec that cannot pass does not: the harness really judges the rule
sed 's/LIMIT = "10"/LIMIT = "1000"/' "$NLG_TMP/my-rules/my_rule_spec.lua" >"$NLG_TMP/my-rules/broken_spec.lua"
(
	cd "$NLG_TMP/my-rules" || exit 1
	export LUA_PATH="$NLG_SRC/scripts/?.lua;;" LUA_CPATH="$BUILD/?.so;;"
	busted broken_spec.lua
) >"$NLG_TMP/broken" 2>&1 && nlg_fail "a spec with the limit at 1000 passed: $(tail -n 5 "$NLG_TMP/broken")"
echo "ok: the README's rule and spec pass as the README says; a broken limit fails"
