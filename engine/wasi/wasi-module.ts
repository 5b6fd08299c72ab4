// Checks that a compiled module is a WASI preview 1 command Kiln can run:
// every import is a wasi_snapshot_preview1 function Node provides, and it
// exports _start and its memory. Each problem is one sentence a person can act on.

/** The functions of WASI preview 1 (wasi_snapshot_preview1), all of which node:wasi provides. */
export const PREVIEW1_FUNCTIONS = new Set([
  'args_get', 'args_sizes_get', 'environ_get', 'environ_sizes_get', 'clock_res_get', 'clock_time_get',
  'fd_advise', 'fd_allocate', 'fd_close', 'fd_datasync', 'fd_fdstat_get', 'fd_fdstat_set_flags',
  'fd_fdstat_set_rights', 'fd_filestat_get', 'fd_filestat_set_size', 'fd_filestat_set_times', 'fd_pread',
  'fd_prestat_get', 'fd_prestat_dir_name', 'fd_pwrite', 'fd_read', 'fd_readdir', 'fd_renumber', 'fd_seek',
  'fd_sync', 'fd_tell', 'fd_write', 'path_create_directory', 'path_filestat_get', 'path_filestat_set_times',
  'path_link', 'path_open', 'path_readlink', 'path_remove_directory', 'path_rename', 'path_symlink',
  'path_unlink_file', 'poll_oneoff', 'proc_exit', 'proc_raise', 'sched_yield', 'random_get', 'sock_accept',
  'sock_recv', 'sock_send', 'sock_shutdown',
]);

const PREVIEW1 = 'wasi_snapshot_preview1';

/** Why the module cannot run as a WASI preview 1 command, or undefined when it can. */
export function wasiCommandProblem(module: WebAssembly.Module): string | undefined {
  const imports = WebAssembly.Module.imports(module);
  if (imports.some((i) => i.module === 'wasi_unstable')) {
    return 'imports wasi_unstable (WASI snapshot 0); Kiln runs WASI preview 1 (wasi_snapshot_preview1) modules: rebuild it with a current WASI SDK';
  }
  const foreign = imports.filter((i) => i.module !== PREVIEW1 || i.kind !== 'function' || !PREVIEW1_FUNCTIONS.has(i.name));
  if (foreign.length) {
    const shown = foreign.slice(0, 5).map((i) => `${i.module}.${i.name} (${i.kind})`).join(', ');
    const more = foreign.length > 5 ? ` and ${foreign.length - 5} more` : '';
    return `imports ${shown}${more}, which Kiln's WASI runtime does not provide; it provides only the wasi_snapshot_preview1 functions`;
  }
  const exported = WebAssembly.Module.exports(module);
  if (!exported.some((e) => e.name === '_start' && e.kind === 'function')) {
    return 'has no _start export: it is not a WASI command (a reactor or library module cannot run as an action)';
  }
  if (!exported.some((e) => e.name === 'memory' && e.kind === 'memory')) {
    return 'does not export its memory as "memory", which WASI preview 1 requires';
  }
  return undefined;
}
