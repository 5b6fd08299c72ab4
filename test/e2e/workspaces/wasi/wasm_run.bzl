"""wasm_run: a genrule-like rule whose tool is a WASI module.

A genrule runs its command through bash, which a WASI platform does not have;
this rule makes the .wasm itself argv[0]: `tool src out`.
"""

def _wasm_run_impl(ctx):
    ctx.actions.run(
        executable = ctx.file.tool,
        arguments = [ctx.file.src.path, ctx.outputs.out.path],
        inputs = [ctx.file.src],
        outputs = [ctx.outputs.out],
        mnemonic = "WasmRun",
        progress_message = "Running %s on %s" % (ctx.file.tool.short_path, ctx.file.src.short_path),
    )

wasm_run = rule(
    implementation = _wasm_run_impl,
    attrs = {
        "tool": attr.label(allow_single_file = [".wasm"], mandatory = True),
        "src": attr.label(allow_single_file = True, mandatory = True),
        "out": attr.output(mandatory = True),
    },
)
