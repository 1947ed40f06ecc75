//! Route path patterns: literal segments, `*` (one segment), `{name}` (one
//! named segment) and a trailing `/**` (this path and everything below it).

use std::fmt;

use crate::path::is_canonical_literal;

/// Why a path pattern was refused by the compiler.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("path pattern must start with '/'")]
    NotAbsolute,
    #[error("path pattern has an empty segment ('//' or a trailing '/')")]
    EmptySegment,
    #[error("'**' is only allowed as the last segment, as in '/api/**'")]
    InnerDoubleStar,
    #[error("segment '{0}' is a dot segment; requests with dot segments are always refused")]
    DotSegment(String),
    #[error("segment '{0}' mixes a wildcard with other characters; use '*' or '{{name}}' for a whole segment")]
    PartialWildcard(String),
    #[error("'{{{0}}}' is not a valid segment name (letters, digits and '_', not starting with a digit)")]
    BadName(String),
    #[error("segment '{segment}' contains '{character}', which never appears literally in a normalised request path")]
    BadCharacter { segment: String, character: char },
}

/// One segment of a pattern.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Segment {
    /// Matches exactly this text (case-sensitive).
    Literal(Box<str>),
    /// Matches any one non-empty segment; `name` is set for `{name}`.
    Any { name: Option<Box<str>> },
}

/// A compiled path pattern.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PathPattern {
    segments: Vec<Segment>,
    /// Ends in `/**`: also matches every path below.
    subtree: bool,
}

impl PathPattern {
    /// Parse the operator's pattern text.
    pub fn parse(text: &str) -> Result<PathPattern, PatternError> {
        let rest = text.strip_prefix('/').ok_or(PatternError::NotAbsolute)?;
        if rest.is_empty() {
            return Ok(PathPattern { segments: Vec::new(), subtree: false });
        }
        let parts: Vec<&str> = rest.split('/').collect();
        let mut segments = Vec::with_capacity(parts.len());
        let mut subtree = false;
        for (i, part) in parts.iter().enumerate() {
            if *part == "**" {
                if i + 1 != parts.len() {
                    return Err(PatternError::InnerDoubleStar);
                }
                subtree = true;
                continue;
            }
            segments.push(parse_segment(part)?);
        }
        Ok(PathPattern { segments, subtree })
    }

    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// True for a pattern ending in `/**`.
    pub fn is_subtree(&self) -> bool {
        self.subtree
    }

    /// Does this pattern match these (non-empty) path segments?
    pub fn matches<'p>(&self, path: impl IntoIterator<Item = &'p str>) -> bool {
        let mut path = path.into_iter();
        for segment in &self.segments {
            let Some(actual) = path.next() else {
                return false;
            };
            if let Segment::Literal(expected) = segment {
                if **expected != *actual {
                    return false;
                }
            }
        }
        self.subtree || path.next().is_none()
    }

    /// True when every path this pattern matches is also matched by `other`.
    /// Sound, not complete: used to report shadowed routes, where a false
    /// "covered" would hide a real route from the operator.
    pub fn is_covered_by(&self, other: &PathPattern) -> bool {
        let (mine, theirs) = (&self.segments, &other.segments);
        if theirs.len() > mine.len() {
            return false;
        }
        if theirs.len() < mine.len() && !other.subtree {
            return false;
        }
        if theirs.len() == mine.len() && self.subtree && !other.subtree {
            return false;
        }
        theirs.iter().zip(mine).all(|(t, m)| match (t, m) {
            (Segment::Any { .. }, _) => true,
            (Segment::Literal(a), Segment::Literal(b)) => a == b,
            (Segment::Literal(_), Segment::Any { .. }) => false,
        })
    }
}

fn parse_segment(part: &str) -> Result<Segment, PatternError> {
    if part.is_empty() {
        return Err(PatternError::EmptySegment);
    }
    if part == "*" {
        return Ok(Segment::Any { name: None });
    }
    if let Some(name) = part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
        let valid = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(PatternError::BadName(name.to_owned()));
        }
        return Ok(Segment::Any { name: Some(name.into()) });
    }
    if part == "." || part == ".." {
        return Err(PatternError::DotSegment(part.to_owned()));
    }
    if part.contains(['*', '{', '}']) {
        return Err(PatternError::PartialWildcard(part.to_owned()));
    }
    if let Some(bad) = part.bytes().find(|&b| !is_canonical_literal(b)) {
        return Err(PatternError::BadCharacter { segment: part.to_owned(), character: char::from(bad) });
    }
    Ok(Segment::Literal(part.into()))
}

impl fmt::Display for PathPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.segments.is_empty() && !self.subtree {
            return f.write_str("/");
        }
        for segment in &self.segments {
            match segment {
                Segment::Literal(text) => write!(f, "/{text}")?,
                Segment::Any { name: None } => f.write_str("/*")?,
                Segment::Any { name: Some(name) } => write!(f, "/{{{name}}}")?,
            }
        }
        if self.subtree {
            f.write_str("/**")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> PathPattern {
        PathPattern::parse(text).unwrap()
    }

    fn m(pattern: &str, path: &str) -> bool {
        let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        p(pattern).matches(segs)
    }

    #[test]
    fn parses_and_displays_round_trip() {
        for text in ["/", "/**", "/todos", "/todos/**", "/users/{id}/posts/*", "/v1/x:y"] {
            assert_eq!(p(text).to_string(), text);
        }
    }

    #[test]
    fn refuses_bad_patterns() {
        assert_eq!(PathPattern::parse("todos"), Err(PatternError::NotAbsolute));
        assert_eq!(PathPattern::parse("/a//b"), Err(PatternError::EmptySegment));
        assert_eq!(PathPattern::parse("/a/"), Err(PatternError::EmptySegment));
        assert_eq!(PathPattern::parse("/**/a"), Err(PatternError::InnerDoubleStar));
        assert_eq!(PathPattern::parse("/a/.."), Err(PatternError::DotSegment("..".into())));
        assert_eq!(PathPattern::parse("/a*"), Err(PatternError::PartialWildcard("a*".into())));
        assert_eq!(PathPattern::parse("/{1x}"), Err(PatternError::BadName("1x".into())));
        assert!(matches!(PathPattern::parse("/a%2Fb"), Err(PatternError::BadCharacter { .. })));
        assert!(matches!(PathPattern::parse("/a b"), Err(PatternError::BadCharacter { .. })));
        assert!(matches!(PathPattern::parse("/a;b"), Err(PatternError::BadCharacter { .. })));
    }

    #[test]
    fn literal_star_and_named_segments() {
        assert!(m("/todos", "/todos"));
        assert!(!m("/todos", "/todos/1"));
        assert!(!m("/todos", "/Todos"));
        assert!(m("/todos/*", "/todos/1"));
        assert!(!m("/todos/*", "/todos"));
        assert!(!m("/todos/*", "/todos/1/2"));
        assert!(m("/users/{id}/posts", "/users/7/posts"));
        assert!(m("/", "/"));
        assert!(!m("/", "/a"));
    }

    #[test]
    fn double_star_matches_the_path_and_below() {
        assert!(m("/todos/**", "/todos"));
        assert!(m("/todos/**", "/todos/1"));
        assert!(m("/todos/**", "/todos/1/2/3"));
        assert!(!m("/todos/**", "/todosx"));
        assert!(!m("/todos/**", "/"));
        assert!(m("/**", "/"));
        assert!(m("/**", "/anything/at/all"));
    }

    #[test]
    fn coverage() {
        assert!(p("/a/b").is_covered_by(&p("/a/*")));
        assert!(p("/a/b").is_covered_by(&p("/a/**")));
        assert!(p("/a").is_covered_by(&p("/a/**")));
        assert!(p("/a/**").is_covered_by(&p("/a/**")));
        assert!(p("/a/b/**").is_covered_by(&p("/a/**")));
        assert!(p("/a/*/c").is_covered_by(&p("/**")));
        assert!(!p("/a/**").is_covered_by(&p("/a/*")));
        assert!(!p("/a/*").is_covered_by(&p("/a/b")));
        assert!(!p("/a").is_covered_by(&p("/a/*")));
        assert!(!p("/a/b").is_covered_by(&p("/a")));
        assert!(!p("/**").is_covered_by(&p("/a/**")));
    }
}
