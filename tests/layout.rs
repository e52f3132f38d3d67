//! The house stays as the README describes it: its layout (the Development section) names
//! every file under `src/` and nothing that is gone, and no source file grows past 700 lines
//! outside its unit tests (split it by concern when it does).

use std::path::Path;

/// The repository's root.
fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The README's layout (its Development section) as entries: each line that starts with a
/// path, with the lines indented under it.
fn layout_entries(readme: &str) -> Vec<(String, String)> {
    let section = readme
        .split("## Development")
        .nth(1)
        .expect("README has a Development section");
    let block = section
        .split("```")
        .nth(1)
        .expect("the Development section opens with the layout block");
    let mut entries: Vec<(String, String)> = Vec::new();
    for line in block.lines().filter(|l| !l.trim().is_empty()) {
        match entries.last_mut() {
            Some((_, text)) if line.starts_with(' ') => {
                text.push(' ');
                text.push_str(line.trim());
            }
            _ => {
                let (path, text) = line.split_once(' ').unwrap_or((line, ""));
                entries.push((path.to_string(), text.trim().to_string()));
            }
        }
    }
    entries
}

/// Every source file under `src/`, relative to it.
fn source_files(dir: &Path, prefix: &str, found: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.path().is_dir() {
            source_files(&entry.path(), &format!("{prefix}{name}/"), found);
        } else {
            found.push(format!("{prefix}{name}"));
        }
    }
}

#[test]
fn the_readme_layout_names_every_source_file() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let entries = layout_entries(&readme);
    let mut files = Vec::new();
    source_files(&root().join("src"), "", &mut files);
    assert!(files.len() > 40, "src/ read: {files:?}");
    let unnamed: Vec<&String> = files
        .iter()
        .filter(|file| {
            // A file has its own entry, or is named in the entry of a directory above it,
            // and so is every directory between them (`session/`).
            let named = |(path, text): &(String, String)| {
                let full = format!("src/{file}");
                if *path == full {
                    return true;
                }
                let Some(rest) = full
                    .strip_prefix(path.as_str())
                    .filter(|_| path.ends_with('/'))
                else {
                    return false;
                };
                let parts: Vec<&str> = rest.split('/').collect();
                let (name, between) = parts.split_last().unwrap();
                text.contains(*name) && between.iter().all(|d| text.contains(&format!("{d}/")))
            };
            !entries.iter().any(named)
        })
        .collect();
    assert!(
        unnamed.is_empty(),
        "the README's layout (Development) does not name: {unnamed:?}"
    );
    // And names nothing that is gone.
    for (path, _) in entries.iter().filter(|(p, _)| p.starts_with("src/")) {
        assert!(
            root().join(path).exists(),
            "the README's layout names {path}, which is gone"
        );
    }
}

#[test]
fn no_source_file_holds_more_than_700_lines_outside_its_unit_tests() {
    let mut files = Vec::new();
    source_files(&root().join("src"), "", &mut files);
    let long: Vec<(String, usize)> = files
        .iter()
        .filter(|file| file.ends_with(".rs"))
        .map(|file| {
            let text = std::fs::read_to_string(root().join("src").join(file)).unwrap();
            let code = text
                .lines()
                .take_while(|line| *line != "#[cfg(test)]")
                .count();
            (file.clone(), code)
        })
        .filter(|(_, code)| *code > 700)
        .collect();
    assert!(long.is_empty(), "split these by concern: {long:?}");
}
