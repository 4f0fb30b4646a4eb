//! The layers of docs/architecture.md hold: every `crate::` path in a module of `engine/src`
//! (in `use` lines and inline, comments aside; a `#[macro_export]` macro counts as the module
//! that defines it) names only a module that the table lets it import, the table itself points
//! only downward, and every module of `engine/src/lib.rs` has a row.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Imports that break the table today and that the issue-12 branches remove: (importer,
/// imported, why). Each entry must still be needed; the test fails when one is not, so that the
/// list only shrinks. Empty it when the branches are merged.
const PENDING_IMPORTS: &[(&str, &str, &str)] = &[];

/// A row of the layer table.
#[derive(Debug)]
struct Layer {
    layer: u32,
    may_import: BTreeSet<String>,
}

/// The words in backticks of `cell`.
fn backticked(cell: &str) -> Vec<String> {
    cell.split('`').skip(1).step_by(2).map(str::to_string).collect()
}

/// The table of docs/architecture.md: module -> its layer and what it may import ("every lower
/// layer" spelled out).
fn layer_table(doc: &str) -> BTreeMap<String, Layer> {
    let mut rows = BTreeMap::new();
    let mut lower_rule = vec![];
    for line in doc.lines().filter(|l| l.starts_with('|')) {
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        let names = backticked(cells[1]);
        let (Ok(layer), [module]) = (cells[0].parse::<u32>(), names.as_slice()) else {
            continue;
        };
        let may = cells.last().unwrap();
        if may.contains("every lower layer") {
            lower_rule.push(module.clone());
        }
        let may_import = backticked(may).into_iter().collect();
        assert!(
            rows.insert(module.clone(), Layer { layer, may_import }).is_none(),
            "docs/architecture.md: two rows for `{module}`"
        );
    }
    for module in lower_rule {
        let layer = rows[&module].layer;
        let lower: Vec<String> =
            rows.iter().filter(|(_, row)| row.layer < layer).map(|(m, _)| m.clone()).collect();
        rows.get_mut(&module).unwrap().may_import.extend(lower);
    }
    rows
}

/// The top-level modules `lib.rs` declares.
fn declared_modules(lib: &str) -> BTreeSet<String> {
    lib.lines()
        .filter_map(|l| l.trim().strip_prefix("pub mod ").or_else(|| l.trim().strip_prefix("mod ")))
        .map(|rest| rest.trim_end_matches(';').to_string())
        .collect()
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
}

/// The top-level module a file of `src` belongs to (`None` for `lib.rs` and `main.rs`).
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let relative = file.strip_prefix(src).unwrap();
    let first = relative.components().next()?.as_os_str().to_str()?;
    match first.strip_suffix(".rs") {
        Some("lib" | "main") => None,
        Some(module) => Some(module.to_string()),
        None => Some(first.to_string()),
    }
}

/// A line without its `//` comment.
fn code(line: &str) -> &str {
    line.find("//").map_or(line, |at| &line[..at])
}

/// The first segment of every path that follows `crate::` in `text`, with the byte offset of
/// its `crate::`: `crate::a::B` gives `a`, `crate::{a::B, c}` (over lines too) gives `a` and `c`.
fn crate_paths(text: &str) -> Vec<(usize, String)> {
    let mut found = vec![];
    for (at, _) in text.match_indices("crate::") {
        let before = text[..at].chars().next_back();
        let after = &text[at + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$') {
            continue;
        }
        if let Some(group) = after.strip_prefix('{') {
            let mut depth = 1;
            let mut item = String::new();
            let mut items = vec![];
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 1 => break,
                    '}' => depth -= 1,
                    ',' if depth == 1 => items.push(std::mem::take(&mut item)),
                    _ => {}
                }
                if depth == 1 && c != ',' {
                    item.push(c);
                }
            }
            items.push(item);
            found.extend(items.iter().map(|i| (at, first_segment(i.trim()))));
        } else {
            found.push((at, first_segment(after)));
        }
    }
    found.retain(|(_, s)| !s.is_empty());
    found
}

fn first_segment(path: &str) -> String {
    path.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect()
}

/// `#[macro_export]` macros (used as `crate::name!`) and the module that defines each.
fn exported_macros(files: &[(String, PathBuf, String)]) -> BTreeMap<String, String> {
    let mut macros = BTreeMap::new();
    for (module, _, text) in files {
        let mut exported = false;
        for line in text.lines().map(str::trim) {
            if line.starts_with("#[macro_export]") {
                exported = true;
            } else if let Some(rest) = line.strip_prefix("macro_rules!")
                && exported
            {
                macros.insert(first_segment(rest.trim()), module.clone());
                exported = false;
            }
        }
    }
    macros
}

/// What breaks the table in the sources under `src`: one line per offending path, and the
/// (importer, imported) pairs seen.
fn violations(
    src: &Path,
    table: &BTreeMap<String, Layer>,
) -> (Vec<String>, BTreeSet<(String, String)>) {
    let mut paths = vec![];
    rust_files(src, &mut paths);
    paths.sort();
    let files: Vec<(String, PathBuf, String)> = paths
        .into_iter()
        .filter_map(|p| {
            let module = module_of(src, &p)?;
            let text = std::fs::read_to_string(&p).unwrap();
            Some((module, p, text))
        })
        .collect();
    let macros = exported_macros(&files);
    let mut problems = vec![];
    let mut seen = BTreeSet::new();
    for (module, path, text) in &files {
        let shown = path.strip_prefix(src.parent().unwrap()).unwrap().display();
        let Some(row) = table.get(module) else {
            problems.push(format!("{shown}: module `{module}` has no row in the layer table"));
            continue;
        };
        let code: Vec<&str> = text.lines().map(code).collect();
        for (number, line) in code.iter().enumerate() {
            if line.contains("super::super::") {
                problems.push(format!(
                    "{shown}:{}: `super::super::` reaches out of its module; name it with a \
                     `crate::` path, which this check reads",
                    number + 1
                ));
            }
        }
        let code = code.join("\n");
        for (at, name) in crate_paths(&code) {
            let imported = match macros.get(&name) {
                Some(defined_in) => defined_in.clone(),
                None if table.contains_key(&name) => name,
                // An item of lib.rs itself (`crate::Result`).
                None => continue,
            };
            if imported == *module {
                continue;
            }
            seen.insert((module.clone(), imported.clone()));
            if !row.may_import.contains(&imported) {
                problems.push(format!(
                    "{shown}:{}: `{module}` imports `{imported}`; it may import only {:?} \
                     (docs/architecture.md)",
                    code[..at].matches('\n').count() + 1,
                    row.may_import
                ));
            }
        }
    }
    (problems, seen)
}

fn engine_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn architecture_table() -> BTreeMap<String, Layer> {
    let doc = engine_dir().join("../docs/architecture.md");
    layer_table(&std::fs::read_to_string(doc).unwrap())
}

#[test]
fn modules_import_only_what_the_architecture_table_allows() {
    let table = architecture_table();
    let src = engine_dir().join("src");
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
    let declared = declared_modules(&lib);
    let mut problems = vec![];
    for (module, row) in &table {
        for imported in &row.may_import {
            match table.get(imported) {
                Some(other) if other.layer < row.layer => {}
                Some(_) => problems.push(format!(
                    "docs/architecture.md: `{module}` may import `{imported}`, which is not on a \
                     lower layer"
                )),
                None => problems.push(format!(
                    "docs/architecture.md: `{module}` may import `{imported}`, which has no row"
                )),
            }
        }
        if !declared.contains(module) {
            problems.push(format!(
                "docs/architecture.md: `{module}` has a row but engine/src/lib.rs declares no \
                 such module"
            ));
        }
    }
    let (mut found, seen) = violations(&src, &table);
    found.retain(|problem| {
        !PENDING_IMPORTS
            .iter()
            .any(|(from, to, _)| problem.contains(&format!("`{from}` imports `{to}`;")))
    });
    problems.extend(found);
    for (from, to, why) in PENDING_IMPORTS {
        if !seen.contains(&(from.to_string(), to.to_string())) {
            problems.push(format!(
                "`{from}` no longer imports `{to}`: remove it from PENDING_IMPORTS ({why})"
            ));
        }
    }
    assert!(problems.is_empty(), "the layers do not hold:\n{}", problems.join("\n"));
}

#[test]
fn the_check_reads_grouped_inline_and_macro_paths() {
    let names = |text: &str| crate_paths(text).into_iter().map(|(_, n)| n).collect::<Vec<_>>();
    assert_eq!(
        names("use crate::{catalog::TableDef, sql::{self, Located},\n    Result, runtime::X};"),
        ["catalog", "sql", "Result", "runtime"]
    );
    assert_eq!(names("let x = crate::runtime::slot::BatchSlot::new(s);"), ["runtime"]);
    assert_eq!(names("$crate::telemetry::x!(); mycrate::planner"), Vec::<String>::new());
    assert_eq!(code("use crate::a; // crate::b"), "use crate::a; ");

    // A table where `low` may import nothing and `high` everything below it.
    let table = layer_table(
        "| layer | module | owns | may import |\n|---|---|---|---|\n\
         | 0 | `error` | errors | nothing |\n\
         | 1 | `low` | x | `error` |\n\
         | 2 | `high` | y | every lower layer |\n",
    );
    assert_eq!(table["high"].may_import, BTreeSet::from(["error".into(), "low".into()]));
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("low")).unwrap();
    std::fs::write(src.join("error.rs"), "#[macro_export]\nmacro_rules! fail { () => {} }\n")
        .unwrap();
    std::fs::write(src.join("high.rs"), "use crate::low::A;\nfn f() { crate::fail!() }\n").unwrap();
    std::fs::write(
        src.join("low").join("mod.rs"),
        "use crate::error::E;\n// crate::high in a comment\nuse crate::{\n    error::F,\n    high::H,\n};\n",
    )
    .unwrap();
    let (problems, seen) = violations(&src, &table);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].starts_with("src/low/mod.rs:3: `low` imports `high`"), "{problems:?}");
    assert!(seen.contains(&("high".into(), "error".into())), "the macro is error's: {seen:?}");
}
