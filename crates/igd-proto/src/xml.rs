//! The one hardened XML reader every document of this crate goes through.
//!
//! UPnP documents (device descriptions, SOAP envelopes, the `PortMappingList` of
//! `GetListOfPortMappings`) come from whoever answers on the LAN, so this module owns the
//! rules that keep a hostile document cheap and harmless: a byte cap checked before any
//! parsing, no DTD at all (UDA 1.1 §2 and §3 never use one, and a DTD is what entity
//! expansion and external-entity attacks need), only the five predefined entities plus
//! numeric character references, an element-depth cap and an element-count cap. It turns
//! the input into a small owned tree ([`Element`]) keyed by *local* names and resolved
//! namespace URIs, because devices disagree about prefixes (`s:`, `SOAP-ENV:`, none) but
//! not about names.

use std::fmt;

use quick_xml::escape::resolve_xml_entity;
use quick_xml::events::{BytesStart, BytesText, Event};
use quick_xml::name::ResolveResult;
use quick_xml::NsReader;

/// Element nesting limit of any document: the deepest legitimate one (a description with
/// [`crate::description::MAX_DEPTH`] nested devices) needs about 20 levels.
pub(crate) const MAX_XML_DEPTH: usize = 32;

/// Element count limit of any document. A `PortMappingList` that fills
/// [`crate::soap::MAX_SOAP_LEN`] holds about 30,000 elements; the cap bounds the memory a
/// document of tiny elements (`<a/>` is 4 bytes) can make us spend on the tree.
pub(crate) const MAX_ELEMENTS: usize = 65_536;

/// A malformed XML document: what the underlying reader reported and where.
///
/// The reader's own error type is not exposed, so that upgrading it is not a breaking
/// change; the message is meant for logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XmlError {
    position: u64,
    message: String,
}

impl XmlError {
    fn new(position: u64, message: impl Into<String>) -> Self {
        Self {
            position,
            message: message.into(),
        }
    }

    /// Byte offset in the input near which the problem was found.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// The reader's description of the problem.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for XmlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at byte {}: {}", self.position, self.message)
    }
}

impl std::error::Error for XmlError {}

/// Why [`parse_document`] refused a document; each public error type maps these onto its
/// own variants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum XmlFault {
    TooLarge { len: usize, max: usize },
    Dtd,
    Entity,
    TooDeep,
    TooManyElements,
    Malformed(XmlError),
}

/// One element of a parsed document.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Element {
    /// Resolved namespace URI, `None` when unbound or bound to an undeclared prefix.
    pub ns: Option<String>,
    /// Local name (prefix removed).
    pub local: String,
    /// Concatenated, unescaped direct text and CDATA content, untrimmed.
    pub text: String,
    /// Child elements in document order.
    pub children: Vec<Element>,
}

impl Element {
    /// The first child with this local name.
    pub fn child(&self, local: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.local == local)
    }

    /// Every child with this local name, in document order.
    pub fn children_named<'a>(&'a self, local: &'a str) -> impl Iterator<Item = &'a Element> {
        self.children.iter().filter(move |c| c.local == local)
    }

    /// The trimmed text of the first child with this local name.
    pub fn child_text(&self, local: &str) -> Option<&str> {
        self.child(local).map(|c| c.text.trim())
    }

    /// The first element with this local name at any depth below `self` (pre-order).
    pub fn descendant(&self, local: &str) -> Option<&Element> {
        // Depth is bounded by MAX_XML_DEPTH, so recursion is safe.
        self.children.iter().find_map(|c| {
            if c.local == local {
                Some(c)
            } else {
                c.descendant(local)
            }
        })
    }
}

/// Parses `input` into its root element, enforcing every limit of this module.
///
/// Content after the root element's end is not read: devices sometimes append NUL bytes
/// or a second newline-separated copy, and nothing after the root can change the meaning.
pub(crate) fn parse_document(input: &[u8], max_len: usize) -> Result<Element, XmlFault> {
    if input.len() > max_len {
        return Err(XmlFault::TooLarge {
            len: input.len(),
            max: max_len,
        });
    }
    let mut reader = NsReader::from_reader(input);
    // Keep text verbatim: SOAP argument values may legitimately start or end with spaces.
    reader.config_mut().trim_text(false);

    let mut stack: Vec<Element> = Vec::new();
    let mut count = 0usize;
    loop {
        let (ns, event) = match reader.read_resolved_event() {
            // The namespace borrows the reader: make it owned before anything else.
            Ok((ns, event)) => (namespace(ns), event),
            Err(e) => return Err(malformed(&reader, e)),
        };
        match event {
            Event::DocType(_) => return Err(XmlFault::Dtd),
            Event::Start(_) | Event::Empty(_) if stack.len() >= MAX_XML_DEPTH => {
                return Err(XmlFault::TooDeep);
            }
            Event::Start(start) => {
                count += 1;
                if count > MAX_ELEMENTS {
                    return Err(XmlFault::TooManyElements);
                }
                stack.push(open(&reader, ns, &start)?);
            }
            Event::Empty(start) => {
                count += 1;
                if count > MAX_ELEMENTS {
                    return Err(XmlFault::TooManyElements);
                }
                let element = open(&reader, ns, &start)?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(element),
                    None => return Ok(element),
                }
            }
            Event::End(_) => {
                // The reader checks that end names match, so the stack is never empty here.
                let Some(element) = stack.pop() else {
                    return Err(XmlFault::Malformed(XmlError::new(
                        reader.buffer_position(),
                        "end tag without start tag",
                    )));
                };
                match stack.last_mut() {
                    Some(parent) => parent.children.push(element),
                    None => return Ok(element),
                }
            }
            Event::Text(text) => {
                let unescaped = unescape(&reader, &text)?;
                match stack.last_mut() {
                    Some(current) => current.text.push_str(&unescaped),
                    None if unescaped.trim().is_empty() => {}
                    None => {
                        return Err(XmlFault::Malformed(XmlError::new(
                            reader.buffer_position(),
                            "text outside the root element",
                        )))
                    }
                }
            }
            Event::CData(data) => {
                let text = data
                    .decode()
                    .map_err(|e| malformed(&reader, quick_xml::Error::Encoding(e)))?;
                if let Some(current) = stack.last_mut() {
                    current.text.push_str(&text);
                }
            }
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) => {}
            Event::Eof => {
                return Err(XmlFault::Malformed(XmlError::new(
                    reader.buffer_position(),
                    if stack.is_empty() {
                        "no root element"
                    } else {
                        "document ends inside an element"
                    },
                )))
            }
        }
    }
}

fn malformed(reader: &NsReader<&[u8]>, error: quick_xml::Error) -> XmlFault {
    match error {
        // An entity the reader does not know is an entity reference we refuse, not a
        // syntax problem: report it as such so callers can tell an attack from a typo.
        quick_xml::Error::Escape(quick_xml::escape::EscapeError::UnrecognizedEntity(..)) => {
            XmlFault::Entity
        }
        other => XmlFault::Malformed(XmlError::new(reader.error_position(), other.to_string())),
    }
}

/// Unescapes text allowing only the five predefined entities of XML 1.0 §4.6 and numeric
/// character references; `resolve_xml_entity` is used explicitly (not the reader's
/// default) so that enabling quick-xml's `escape-html` feature elsewhere in a build cannot
/// widen the set.
fn unescape<'a>(
    reader: &NsReader<&[u8]>,
    text: &BytesText<'a>,
) -> Result<std::borrow::Cow<'a, str>, XmlFault> {
    text.unescape_with(resolve_xml_entity)
        .map_err(|e| malformed(reader, e))
}

/// The namespace URI an element resolved to. quick-xml keeps the `xmlns` attribute value
/// as written, so it is unescaped here like any other text (with the same entity rules).
fn namespace(ns: ResolveResult<'_>) -> Result<Option<String>, String> {
    match ns {
        ResolveResult::Bound(ns) => {
            let raw = std::str::from_utf8(ns.into_inner()).map_err(|e| e.to_string())?;
            match quick_xml::escape::unescape_with(raw, resolve_xml_entity) {
                Ok(uri) => Ok(Some(uri.into_owned())),
                Err(e) => Err(e.to_string()),
            }
        }
        ResolveResult::Unbound | ResolveResult::Unknown(_) => Ok(None),
    }
}

fn open(
    reader: &NsReader<&[u8]>,
    ns: Result<Option<String>, String>,
    start: &BytesStart<'_>,
) -> Result<Element, XmlFault> {
    let local = std::str::from_utf8(start.local_name().into_inner())
        .map_err(|e| XmlFault::Malformed(XmlError::new(reader.buffer_position(), e.to_string())))?
        .to_owned();
    // An unknown entity in a namespace value is also caught by the attribute loop below,
    // which reports it as `Entity`; anything else is malformed.
    let ns = ns.map_err(|e| XmlFault::Malformed(XmlError::new(reader.buffer_position(), e)));
    // Attribute values are not used, but an entity reference hidden in one is refused
    // like anywhere else, and malformed attributes make the document malformed.
    for attribute in start.attributes() {
        let attribute =
            attribute.map_err(|e| malformed(reader, quick_xml::Error::InvalidAttr(e)))?;
        attribute
            .decode_and_unescape_value_with(reader.decoder(), resolve_xml_entity)
            .map_err(|e| malformed(reader, e))?;
    }
    Ok(Element {
        ns: ns?,
        local,
        text: String::new(),
        children: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Element, XmlFault> {
        parse_document(s.as_bytes(), 1 << 20)
    }

    #[test]
    fn local_names_and_namespaces() {
        let root = parse(
            r#"<?xml version="1.0"?><a:x xmlns:a="urn:a"><y xmlns="urn:b"> t </y><a:z/></a:x>"#,
        )
        .unwrap();
        assert_eq!(root.local, "x");
        assert_eq!(root.ns.as_deref(), Some("urn:a"));
        assert_eq!(root.children[0].ns.as_deref(), Some("urn:b"));
        assert_eq!(root.children[0].text, " t ");
        assert_eq!(root.child_text("y"), Some("t"));
        assert_eq!(root.children[1].local, "z");
    }

    #[test]
    fn predefined_and_numeric_entities_are_expanded() {
        let root = parse("<a>&lt;&gt;&amp;&quot;&apos;&#65;&#x42;<![CDATA[<&>]]></a>").unwrap();
        assert_eq!(root.text, "<>&\"'AB<&>");
    }

    #[test]
    fn doctype_and_other_entities_are_refused() {
        assert_eq!(parse("<!DOCTYPE a><a/>"), Err(XmlFault::Dtd));
        assert_eq!(parse("<a>&nbsp;</a>"), Err(XmlFault::Entity));
        assert_eq!(parse(r#"<a b="&x;"/>"#), Err(XmlFault::Entity));
    }

    #[test]
    fn limits() {
        assert_eq!(
            parse_document(b"<a/>", 3),
            Err(XmlFault::TooLarge { len: 4, max: 3 })
        );
        let deep = "<a>".repeat(MAX_XML_DEPTH + 1);
        assert_eq!(parse(&deep), Err(XmlFault::TooDeep));
        let many = format!("<r>{}</r>", "<a/>".repeat(MAX_ELEMENTS));
        assert_eq!(parse(&many), Err(XmlFault::TooManyElements));
    }

    #[test]
    fn malformed_documents() {
        for bad in [
            "",
            "<a>",
            "<a></b>",
            "text",
            "<a>&amp</a>",
            "<a>&#0;</a>",
            "<a b='1' b='2'/>",
        ] {
            assert!(
                matches!(parse(bad), Err(XmlFault::Malformed(_))),
                "{bad:?} gave {:?}",
                parse(bad)
            );
        }
    }

    #[test]
    fn trailing_content_after_root_is_ignored() {
        assert_eq!(parse("<a/>\0\0garbage").unwrap().local, "a");
    }
}
