/**
 * The public surface of a TypeScript entry point as flat `key → declared type` pairs: every
 * export, and for classes, interfaces and enums every public member. Two surfaces compare with
 * a plain object diff, whichever files the declarations live in.
 */
import ts from 'typescript';

const FLAGS = ts.TypeFormatFlags.NoTruncation | ts.TypeFormatFlags.UseFullyQualifiedType | ts.TypeFormatFlags.WriteArrowStyleSignature;

export function apiSurface(entry: string): Record<string, string> {
  const program = ts.createProgram([entry], { strict: true, target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.CommonJS, skipLibCheck: true, noEmit: true });
  const checker = program.getTypeChecker();
  const module = checker.getSymbolAtLocation(program.getSourceFile(entry)!)!;
  const out: Record<string, string> = {};
  const text = (t: ts.Type, flags = 0): string => portable(checker.typeToString(t, undefined, FLAGS | flags));
  const sig = (s: ts.Signature): string => portable(checker.signatureToString(s, undefined, FLAGS));
  const members = (prefix: string, type: ts.Type, decl: ts.Node): void => {
    for (const p of checker.getPropertiesOfType(type)) {
      if (p.name.startsWith('#') || p.name.startsWith('__#')) continue;
      const d = p.valueDeclaration ?? p.declarations?.[0];
      if (d && (ts.getCombinedModifierFlags(d as ts.Declaration) & (ts.ModifierFlags.Private | ts.ModifierFlags.Protected))) continue;
      const optional = p.flags & ts.SymbolFlags.Optional ? '?' : '';
      // Well-known symbols are named `__@asyncDispose@123`, the number varying by program.
      const key = p.name.replace(/^__@(\w+)@\d+$/, '[Symbol.$1]');
      out[`${prefix}.${key}${optional}`] = text(checker.getTypeOfSymbolAtLocation(p, decl));
    }
  };
  for (let s of checker.getExportsOfModule(module)) {
    const name = s.name;
    if (s.flags & ts.SymbolFlags.Alias) s = checker.getAliasedSymbol(s);
    const decl = s.declarations?.[0];
    if (!decl) continue;
    if (s.flags & ts.SymbolFlags.Class) {
      const ctor = checker.getTypeOfSymbolAtLocation(s, decl);
      out[`${name} (class)`] = ctor.getConstructSignatures().map(sig).join(' | ');
      members(`${name}.static`, ctor, decl);
      members(name, checker.getDeclaredTypeOfSymbol(s), decl);
    } else if (s.flags & ts.SymbolFlags.Enum) {
      out[`${name} (enum)`] = '';
      for (const m of checker.getExportsOfModule(s)) out[`${name}.${m.name}`] = String(checker.getConstantValue(m.valueDeclaration as ts.EnumMember));
    } else if (s.flags & ts.SymbolFlags.Interface) {
      out[`${name} (interface)`] = checker.getDeclaredTypeOfSymbol(s).getCallSignatures().map(sig).join(' | ');
      members(name, checker.getDeclaredTypeOfSymbol(s), decl);
    } else if (s.flags & ts.SymbolFlags.TypeAlias) {
      out[`${name} (type)`] = text(checker.getDeclaredTypeOfSymbol(s), ts.TypeFormatFlags.InTypeAlias);
    } else {
      const t = checker.getTypeOfSymbolAtLocation(s, decl);
      const sigs = t.getCallSignatures();
      out[`${name} (value)`] = sigs.length > 0 ? sigs.map(sig).join(' | ') : text(t);
    }
  }
  return out;
}

/**
 * A type's text without where this checkout lives: fully qualified names carry the declaring file
 * (`import(".../x").Foo` → `Foo`), and a dependency's module keeps only its path inside node_modules.
 */
export function portable(text: string): string {
  return text.replace(/import\("[^"]*"\)\./g, '').replace(/import\("[^"]*\/node_modules\//g, 'import("');
}
