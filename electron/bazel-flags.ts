// The .bazelrc lines that point Bazel at this Kiln, as copied from the tray.

export function bazelFlags(grpcUrl: string): string {
  return [
    `build --remote_executor=${grpcUrl}`,
    // Actions queue behind each other on one machine; Bazel's 60 s default is too short.
    'build --remote_timeout=3600',
    '',
  ].join('\n');
}
