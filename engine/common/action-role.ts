// What part of a build an action plays, read off its argv. Bazel gives a
// test's run and its follow-up steps (the XML report, coverage) the same
// mnemonic and label, so without this "Timed out" then "Succeeded" on one
// label reads as a passing test. Pure, no imports: the dashboard uses it too.

/** `test`: the test itself; `test-xml`: writing test.xml after it; `coverage`: merging coverage. */
export type ActionRole = 'test' | 'test-xml' | 'coverage';

/** The role an argv shows, or undefined for an ordinary build action. */
export function actionRole(argv: readonly string[]): ActionRole | undefined {
  const base = (s: string) => s.slice(s.lastIndexOf('/') + 1);
  const names = argv.slice(0, 4).map(base);
  if (names.includes('generate-xml.sh')) return 'test-xml';
  if (names.some((n) => n === 'collect_coverage.sh' || n.startsWith('lcov_merger') || n === 'CoverageOutputGenerator')) return 'coverage';
  if (names.includes('test-setup.sh')) return 'test';
  return undefined;
}

/** A few words for the role, as the dashboard labels it. */
export const ACTION_ROLE_LABELS: Record<ActionRole, string> = {
  test: 'test run',
  'test-xml': 'test.xml report',
  coverage: 'coverage',
};
