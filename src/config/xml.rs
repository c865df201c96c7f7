//! Reads a `<VSConf>` document into (key, value, line) entries with `quick-xml`.

use quick_xml::events::Event;
use quick_xml::Reader;

use super::ConfigError;

/// One `<Key>value</Key>` element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The element name.
    pub key: String,
    /// Its text, unescaped and trimmed.
    pub value: String,
    /// 1-based line of the opening tag.
    pub line: usize,
}

/// The root element's name.
pub const ROOT: &str = "VSConf";

/// Returns the entries of the document in order; malformed XML is an error with its line.
pub fn read_entries(text: &str) -> Result<Vec<Entry>, ConfigError> {
    read_entries_counting(text, &mut LineCounter::default())
}

/// [`read_entries`], counting lines with `lines`.
fn read_entries_counting(text: &str, lines: &mut LineCounter) -> Result<Vec<Entry>, ConfigError> {
    let mut reader = Reader::from_str(text);
    reader.config_mut().trim_text(false);
    // Errors end the parse, so counting their line from the start costs one pass at most.
    let xml_error = |reader: &Reader<&[u8]>, err: quick_xml::Error| ConfigError::Xml {
        line: line_of(text, reader.error_position()),
        message: err.to_string(),
    };

    let mut entries = Vec::new();
    let mut seen_root = false;
    let mut depth = 0usize;
    let mut current: Option<Entry> = None;
    loop {
        let event_start = reader.buffer_position();
        let event = reader.read_event().map_err(|err| xml_error(&reader, err))?;
        let line = lines.line_of_tag(text, event_start);
        let is_start = matches!(event, Event::Start(_));
        match event {
            Event::Start(tag) | Event::Empty(tag) if depth == 0 => {
                let name = String::from_utf8_lossy(tag.name().as_ref()).into_owned();
                if seen_root || name != ROOT {
                    return Err(ConfigError::Xml {
                        line,
                        message: format!("expected the root element <{ROOT}>, found <{name}>"),
                    });
                }
                seen_root = true;
                if is_start {
                    depth = 1;
                }
            }
            Event::Start(tag) if depth == 1 => {
                let key = String::from_utf8_lossy(tag.name().as_ref()).into_owned();
                current = Some(Entry {
                    key,
                    value: String::new(),
                    line,
                });
                depth = 2;
            }
            Event::Empty(tag) if depth == 1 => entries.push(Entry {
                key: String::from_utf8_lossy(tag.name().as_ref()).into_owned(),
                value: String::new(),
                line,
            }),
            Event::Start(tag) => {
                let key = current.as_ref().map_or("", |e| e.key.as_str());
                return Err(ConfigError::Xml {
                    line,
                    message: format!(
                        "<{}> inside <{key}>: values are plain text",
                        String::from_utf8_lossy(tag.name().as_ref())
                    ),
                });
            }
            Event::Text(content) if depth == 2 => {
                let unescaped = content.unescape().map_err(|err| xml_error(&reader, err))?;
                if let Some(entry) = current.as_mut() {
                    entry.value.push_str(&unescaped);
                }
            }
            Event::CData(content) if depth == 2 => {
                if let Some(entry) = current.as_mut() {
                    entry.value.push_str(&String::from_utf8_lossy(&content));
                }
            }
            Event::Text(content) => {
                let stray = content.unescape().map_err(|err| xml_error(&reader, err))?;
                if !stray.trim().is_empty() {
                    return Err(ConfigError::Xml {
                        line,
                        message: format!("text {:?} outside a key element", stray.trim()),
                    });
                }
            }
            Event::End(_) if depth == 2 => {
                if let Some(mut entry) = current.take() {
                    entry.value = entry.value.trim().to_string();
                    entries.push(entry);
                }
                depth = 1;
            }
            Event::End(_) => depth = depth.saturating_sub(1),
            Event::Eof => break,
            // Declarations, comments, processing instructions, doctype: nothing to read.
            _ => {}
        }
    }
    if !seen_root {
        return Err(ConfigError::Xml {
            line: 1,
            message: format!("no <{ROOT}> element"),
        });
    }
    if depth != 0 {
        return Err(ConfigError::Xml {
            line: line_of(text, text.len() as u64),
            message: format!("<{ROOT}> is not closed"),
        });
    }
    Ok(entries)
}

/// Counts lines while the reader moves forward, so each byte is looked at once: counting
/// from the start for every event made parsing quadratic (40,000 elements took 31.6 s).
#[derive(Debug, Default)]
struct LineCounter {
    /// Bytes counted so far.
    counted: usize,
    /// Newlines in `text[..counted]`.
    newlines: usize,
    /// Bytes examined in all (a measure of the work done, for tests).
    examined: usize,
}

impl LineCounter {
    /// The 1-based line of the first `<` at or after byte `position` (an event starts
    /// before its leading space when whitespace is not trimmed, but its tag is on the line
    /// of the `<`). Positions must not decrease between calls.
    fn line_of_tag(&mut self, text: &str, position: u64) -> usize {
        let bytes = text.as_bytes();
        let start = usize::try_from(position)
            .unwrap_or(usize::MAX)
            .min(bytes.len());
        debug_assert!(start >= self.counted, "the reader never moves back");
        let tag = bytes[start.max(self.counted)..]
            .iter()
            .position(|&b| b == b'<')
            .map_or(bytes.len(), |offset| start.max(self.counted) + offset);
        if tag > self.counted {
            let span = &bytes[self.counted..tag];
            self.newlines += span.iter().filter(|&&b| b == b'\n').count();
            self.examined += span.len();
            self.counted = tag;
        }
        self.newlines + 1
    }
}

/// The 1-based line of byte `position`.
fn line_of(text: &str, position: u64) -> usize {
    let end = usize::try_from(position)
        .unwrap_or(usize::MAX)
        .min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_carry_their_lines() {
        let text = "<?xml version=\"1.0\"?>\n<VSConf>\n  <!-- c -->\n  <A>1</A>\n  <B> two &amp; three </B>\n  <C/>\n</VSConf>\n";
        let entries = read_entries(text).unwrap();
        let got: Vec<_> = entries
            .iter()
            .map(|e| (e.key.as_str(), e.value.as_str(), e.line))
            .collect();
        assert_eq!(
            got,
            vec![("A", "1", 4), ("B", "two & three", 5), ("C", "", 6)]
        );
    }

    #[test]
    fn malformed_documents_name_the_line() {
        let err = read_entries("<VSConf>\n<A>1</B>\n</VSConf>").unwrap_err();
        assert!(matches!(err, ConfigError::Xml { line: 2, .. }), "{err:?}");
        let err = read_entries("<Other/>").unwrap_err();
        assert!(err.to_string().contains("VSConf"), "{err}");
        let err = read_entries("<VSConf>\n<A><B>1</B></A>\n</VSConf>").unwrap_err();
        assert!(matches!(err, ConfigError::Xml { line: 2, .. }), "{err:?}");
        assert!(read_entries("").is_err());
        assert!(read_entries("<VSConf><A>1</A>").is_err());
    }

    #[test]
    fn line_counting_looks_at_each_byte_once() {
        let mut text = String::from("<VSConf>\n");
        for i in 0..20_000 {
            text.push_str(&format!("  <K{i}>\n{i}</K{i}>\n"));
        }
        text.push_str("</VSConf>\n");
        let mut lines = LineCounter::default();
        let entries = read_entries_counting(&text, &mut lines).unwrap();
        assert_eq!(entries.len(), 20_000);
        assert_eq!(entries[19_999].line, 2 * 19_999 + 2, "lines stay right");
        assert!(
            lines.examined <= text.len(),
            "examined {} bytes to count lines of a {}-byte document",
            lines.examined,
            text.len()
        );
    }
}
