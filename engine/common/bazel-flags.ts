// The Bazel flag that sends an access token. Pure, no imports: the CLI, the
// HTTP API, the tray and the dashboard all print it, so they say it one way.
//
// The header value "Bearer TOKEN" holds a space. Bazel reads a .bazelrc line by
// splitting it into words shell-style, so an unquoted value ends at the space
// and TOKEN becomes a target. Quoting the value keeps it one word in a .bazelrc
// and on a shell command line alike (both drop the quotes).

/** `--remote_header=authorization="Bearer TOKEN"`, safe to paste into a .bazelrc or a shell. */
export function tokenHeaderFlag(token: string): string {
  return `--remote_header=authorization="Bearer ${token}"`;
}
