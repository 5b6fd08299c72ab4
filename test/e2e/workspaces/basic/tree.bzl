"""A rule whose single output is a directory (a REAPI output directory / Tree)."""

def _tree_impl(ctx):
    out = ctx.actions.declare_directory(ctx.label.name)
    ctx.actions.run_shell(
        outputs = [out],
        command = """
set -eu
d="$1"
mkdir -p "$d/nested/deeper"
printf 'root file\\n' > "$d/root.txt"
printf 'nested file\\n' > "$d/nested/inner.txt"
printf 'deep file\\n' > "$d/nested/deeper/leaf.txt"
: > "$d/empty.txt"
printf '#!/bin/sh\\necho tool-ran\\n' > "$d/tool.sh"
chmod +x "$d/tool.sh"
""",
        arguments = [out.path],
        mnemonic = "KilnTree",
        progress_message = "Writing tree %s" % out.short_path,
    )
    return [DefaultInfo(files = depset([out]))]

tree = rule(implementation = _tree_impl)
