/** The public API is documented: tslab shows these doc comments on inspection in notebooks. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import ts from 'typescript';

test('every exported function and class of @gmt-lab/kernel-lib has a doc comment', () => {
  const entry = path.join(__dirname, '..', 'src', 'index.ts');
  const program = ts.createProgram([entry], { strict: true, esModuleInterop: true });
  const checker = program.getTypeChecker();
  const mod = checker.getSymbolAtLocation(program.getSourceFile(entry)!)!;
  const missing: string[] = [];
  let total = 0;
  for (const e of checker.getExportsOfModule(mod)) {
    const s = e.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(e) : e;
    const decl = s.declarations?.[0];
    if (!decl || !(ts.isFunctionDeclaration(decl) || ts.isClassDeclaration(decl))) continue;
    total += 1;
    if (ts.displayPartsToString(s.getDocumentationComment(checker)).trim() === '') missing.push(`${e.name} (${path.relative(path.dirname(entry), decl.getSourceFile().fileName)})`);
  }
  assert.ok(total > 100, `found the API (${total} functions and classes)`);
  assert.deepEqual(missing, [], 'without a doc comment');
});
