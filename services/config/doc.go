// Package config is the moltbot.json schema: the one place that says which
// fields are secrets, how the file is read and written, how references are
// resolved, and what Validate reports.
//
// Reading: upstream moltbot writes and reads its config with JSON5, so users'
// files carry comments, trailing commas, single-quoted strings and unquoted
// keys. We parse with github.com/titanous/json5 v1.0.0 (full JSON5, a tagged
// release, a fork of encoding/json) rather than github.com/tailscale/hujson:
// hujson accepts only JWCC (comments and trailing commas) and would refuse an
// upstream file with an unquoted key, which is exactly the file migrate must
// take in one step. hujson's advantage, byte offsets for every value, we get
// from a small position index (lines.go) run over the already-validated
// source, so Problems and Get/Set errors still name the line; json5 syntax
// errors carry an offset that we turn into line:column.
//
// Writing: plain JSON, 2-space indent, keys sorted (encoding/json), trailing
// newline. Comments are not kept; migrate's sealed backup keeps the original.
//
// The raw tree (map[string]any) is the source of truth, so upstream keys this
// schema does not know survive a rewrite. Typed access (View) is derived from
// it. References ("${VAR}", "${file:PATH}") stay in the raw tree and are never
// encrypted or inlined; Resolve fills a separate resolved tree.
package config
