//! The error corpus: every file in `cases/errors/` holds one mistake and ends with the exact
//! errors `engine check` must report, as `-- error: LINE:COL: message` lines (`{file}` stands
//! for the file's path).

use std::path::Path;

use engine::catalog::SchemaSource;
use engine::planner::PipelineOptions;
use engine::runtime::load::load_and_plan;

#[tokio::test]
async fn every_broken_file_reports_its_exact_position_and_message() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/cases/errors");
    let mut files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    assert!(files.len() >= 20, "the corpus shrank: {} files", files.len());
    let mut failures = vec![];
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let path = file.display().to_string();
        let expected: Vec<String> = text
            .lines()
            .filter_map(|l| l.strip_prefix("-- error: "))
            .map(|e| format!("{path}:{}", e.replace("{file}", &path)))
            .collect();
        assert!(!expected.is_empty(), "{path} declares no expected error");
        let (_, errors) =
            load_and_plan(&file, &|_| None, &PipelineOptions::default(), &SchemaSource::default())
                .await;
        let actual: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        if actual != expected {
            failures.push(format!("{path}\n  expected: {expected:#?}\n  actual:   {actual:#?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
