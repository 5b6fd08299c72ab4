// A small, strict Prometheus text-format (0.0.4) parser for tests: every line
// must be a HELP, a TYPE or a sample of a declared family; throws otherwise.
export interface PromSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}
export interface PromFamily {
  name: string;
  type: string;
  help: string;
  samples: PromSample[];
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;

export function parsePrometheus(text: string): Map<string, PromFamily> {
  if (!text.endsWith('\n')) throw new Error('exposition must end with a newline');
  const families = new Map<string, PromFamily>();
  const lines = text.slice(0, -1).split('\n');
  lines.forEach((line, i) => {
    const where = `line ${i + 1}: ${line}`;
    let m: RegExpExecArray | null;
    if ((m = /^# HELP (\S+) (.*)$/.exec(line))) {
      if (!NAME.test(m[1])) throw new Error(`bad name, ${where}`);
      if (families.has(m[1])) throw new Error(`duplicate HELP, ${where}`);
      families.set(m[1], { name: m[1], type: '', help: m[2], samples: [] });
    } else if ((m = /^# TYPE (\S+) (counter|gauge|histogram|summary|untyped)$/.exec(line))) {
      const f = families.get(m[1]);
      if (!f || f.type || f.samples.length) throw new Error(`TYPE must follow its HELP once, ${where}`);
      f.type = m[2];
    } else if ((m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$/.exec(line))) {
      const [, name, , labelText, valueText] = m;
      const family = [...families.values()].find(
        (f) => f.name === name || (f.type === 'histogram' && [`${f.name}_bucket`, `${f.name}_sum`, `${f.name}_count`].includes(name)),
      );
      if (!family || !family.type) throw new Error(`sample of an undeclared family, ${where}`);
      if (family.type === 'counter' && !name.endsWith('_total')) throw new Error(`counter without _total, ${where}`);
      const labels: Record<string, string> = {};
      if (labelText) {
        const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)/y;
        let pos = 0;
        while (pos < labelText.length) {
          re.lastIndex = pos;
          const lm = re.exec(labelText);
          if (!lm) throw new Error(`bad labels, ${where}`);
          labels[lm[1]] = lm[2].replace(/\\(.)/g, (_s, c) => (c === 'n' ? '\n' : c));
          pos = re.lastIndex;
        }
      }
      const value = valueText === '+Inf' ? Infinity : valueText === '-Inf' ? -Infinity : Number(valueText);
      if (Number.isNaN(value) && valueText !== 'NaN') throw new Error(`bad value, ${where}`);
      family.samples.push({ name, labels, value });
    } else {
      throw new Error(`unparseable, ${where}`);
    }
  });
  for (const f of families.values()) {
    if (!f.type) throw new Error(`family ${f.name} has no TYPE`);
    if (f.type === 'histogram') checkHistogram(f);
  }
  return families;
}

function checkHistogram(f: PromFamily): void {
  const buckets = f.samples.filter((s) => s.name === `${f.name}_bucket`);
  const count = f.samples.find((s) => s.name === `${f.name}_count`);
  if (!f.samples.some((s) => s.name === `${f.name}_sum`) || !count) throw new Error(`${f.name}: _sum and _count required`);
  let prevLe = -Infinity;
  let prevCount = 0;
  for (const b of buckets) {
    const le = b.labels.le === '+Inf' ? Infinity : Number(b.labels.le);
    if (!(le > prevLe) || b.value < prevCount) throw new Error(`${f.name}: buckets must be increasing and cumulative`);
    prevLe = le;
    prevCount = b.value;
  }
  if (prevLe !== Infinity || prevCount !== count.value) throw new Error(`${f.name}: +Inf bucket must equal _count`);
}

export function sampleValue(families: Map<string, PromFamily>, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const f of families.values()) {
    for (const s of f.samples) {
      if (s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)) return s.value;
    }
  }
  return undefined;
}
