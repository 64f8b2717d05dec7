//! The shell blocks of the docs: every fenced block marked `sh`, `bash`, `shell` or `console`
//! in the README, `docs/*.md`, `bench/README.md` and each `k8s/**/README.md`, named by its file
//! and a hash of its text (so that a changed command is classified again).

use std::path::{Path, PathBuf};

/// The info strings of the fences whose blocks a reader types into a shell.
const SHELL: [&str; 4] = ["sh", "bash", "shell", "console"];

/// One shell block as the docs show it.
#[derive(Debug, Clone)]
pub struct Block {
    /// The file, relative to the workspace root (`docs/ext-authz.md`).
    pub file: String,
    /// The line of the opening fence (1-based), for messages.
    pub line: usize,
    /// The block's lines without the fence's indentation; for `console`, the commands only
    /// (the lines after `$ `), the output shown being the reader's, not the shell's.
    pub script: String,
    /// Everything the block shows, prompts and output lines included.
    pub text: String,
}

impl Block {
    /// FNV-1a over the block's text: stable across runs and platforms, and short enough to
    /// read in the list. Not a security hash: it only tells an edited block from its old self.
    pub fn hash(&self) -> String {
        let hash = self
            .text
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3));
        format!("{hash:016x}")
    }

    /// The first line, which names the block for a reader of the list.
    pub fn first_line(&self) -> &str {
        self.text.lines().next().unwrap_or_default()
    }

    /// The text's words with comment marks dropped and whitespace collapsed, so that what a
    /// comment shows (`# {"overallCode":"OK",…}`) can be looked for across its line breaks.
    pub fn shown(&self) -> String {
        let lines = self.text.lines().map(|line| line.trim().trim_start_matches('#').trim());
        collapse(&lines.collect::<Vec<_>>().join(" "))
    }
}

/// Whitespace runs as one space.
pub fn collapse(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The documents whose shell blocks must run: the README, `docs/*.md`, `bench/README.md` and
/// every `README.md` under `k8s/`, relative to `root`, sorted.
pub fn documents(root: &Path) -> Vec<String> {
    let mut files = vec!["README.md".to_string(), "bench/README.md".to_string()];
    for entry in std::fs::read_dir(root.join("docs")).expect("docs/") {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name.ends_with(".md") {
            files.push(format!("docs/{name}"));
        }
    }
    let mut readmes = Vec::new();
    find_readmes(&root.join("k8s"), &mut readmes);
    files.extend(readmes.iter().map(|p| p.strip_prefix(root).unwrap().display().to_string()));
    files.sort();
    files
}

fn find_readmes(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_dir() {
            find_readmes(&path, found);
        } else if path.file_name().is_some_and(|name| name == "README.md") {
            found.push(path);
        }
    }
}

/// Every shell block of every document under `root`.
pub fn all(root: &Path) -> Vec<Block> {
    let mut blocks = Vec::new();
    for file in documents(root) {
        let text = std::fs::read_to_string(root.join(&file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        blocks.extend(extract(&file, &text));
    }
    blocks
}

/// The shell blocks of one Markdown text. Every fence is followed (a shell-looking line inside
/// a `yaml` block is no command), and an indented fence (in a list item) loses its indentation.
pub fn extract(file: &str, markdown: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut open: Option<(usize, usize, Option<&str>, Vec<&str>)> = None;
    for (index, line) in markdown.lines().enumerate() {
        let indent = line.len() - line.trim_start().len();
        let fence = line.trim_start().strip_prefix("```");
        match (&mut open, fence) {
            (None, Some(info)) => {
                let language = info.split_whitespace().next().unwrap_or_default();
                let shell = SHELL.iter().find(|s| **s == language).copied();
                open = Some((index + 1, indent, shell, Vec::new()));
            }
            (Some(_), Some(rest)) if rest.trim().is_empty() => {
                let (line, _, shell, lines) = open.take().unwrap();
                if let Some(shell) = shell {
                    let text = lines.join("\n");
                    let script = if shell == "console" {
                        let commands = lines.iter().filter_map(|l| l.strip_prefix("$ "));
                        commands.collect::<Vec<_>>().join("\n")
                    } else {
                        text.clone()
                    };
                    blocks.push(Block { file: file.to_string(), line, script, text });
                }
            }
            (Some((_, fence_indent, _, lines)), _) => {
                let cut = indent.min(*fence_indent);
                lines.push(&line[cut..]);
            }
            (None, None) => {}
        }
    }
    assert!(open.is_none(), "{file}: a fence opened at line {} is never closed", open.unwrap().0);
    blocks
}

#[test]
fn blocks_are_found_by_their_fences() {
    let markdown = "text\n```sh\necho one\n# {\"a\":1}\n```\n\n```yaml\nkey: v\n```\n- item\n\n  ```console\n  $ echo two\n  two\n  ```\n```\nplain\n```\n";
    let blocks = extract("x.md", markdown);
    assert_eq!(blocks.len(), 2, "{blocks:?}");
    assert_eq!((blocks[0].line, blocks[0].script.as_str()), (2, "echo one\n# {\"a\":1}"));
    assert_eq!(blocks[0].shown(), "echo one {\"a\":1}");
    assert_eq!((blocks[1].script.as_str(), blocks[1].text.as_str()), ("echo two", "$ echo two\ntwo"));
    assert_ne!(blocks[0].hash(), blocks[1].hash());
    assert_eq!(blocks[0].hash(), extract("y.md", "```bash\necho one\n# {\"a\":1}\n```\n")[0].hash());
}
