//! libyaml's event API over one string, through `unsafe-libyaml`: each
//! event with its byte range and the few facts the proof needs (style,
//! properties, flow), a scalar's value copied only when asked for. No
//! values are built, which keeps the proof cheaper than a full load.

use std::ptr::addr_of_mut;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum EventKind {
    Scalar,
    CollectionStart,
    CollectionEnd,
    Alias,
    Other,
}

#[derive(Clone, Copy, Debug)]
pub(super) struct Event {
    pub(super) kind: EventKind,
    pub(super) start: usize,
    pub(super) end: usize,
    /// A scalar written plain.
    pub(super) plain: bool,
    /// A scalar written as a `|` or `>` block.
    pub(super) block: bool,
    /// A scalar or collection inside a flow collection, or a flow
    /// collection's start.
    pub(super) flow: bool,
    /// A mapping's start.
    pub(super) mapping: bool,
    /// The node is a mapping key.
    pub(super) key: bool,
    /// A double-quoted scalar.
    pub(super) double_quoted: bool,
    /// A scalar written plain without a tag: subject to implicit resolution.
    pub(super) plain_untagged: bool,
    /// The node has a tag or an anchor (written at its start).
    pub(super) properties: bool,
    /// Index into the stored scalar values, for scalars that hold a place.
    pub(super) value: Option<usize>,
    /// The start of a document.
    pub(super) document: bool,
    /// Why PyYAML's `full_load` cannot build this node although it parses:
    /// an alias to no anchor, a tag its loader has no constructor for.
    pub(super) unloadable: Option<&'static str>,
}

impl Event {
    /// An event of `kind` over `start..end`, every flag off.
    pub(super) fn blank(kind: EventKind, start: usize, end: usize) -> Event {
        Event {
            kind,
            start,
            end,
            plain: false,
            block: false,
            flow: false,
            mapping: false,
            key: false,
            double_quoted: false,
            plain_untagged: false,
            properties: false,
            value: None,
            document: false,
            unloadable: None,
        }
    }
}

/// Whether PyYAML's `FullLoader` constructs nodes with this tag: the YAML
/// types and Python's plain ones, not local tags (`!foo`) and not objects
/// built by calling Python code.
fn loadable_tag(tag: &[u8]) -> bool {
    match tag.strip_prefix(b"tag:yaml.org,2002:") {
        Some(rest) => !rest.starts_with(b"python/object") && !rest.starts_with(b"python/module"),
        None => false,
    }
}

/// The bytes of a NUL-terminated string from libyaml, if any.
///
/// SAFETY: `p` is null or a NUL-terminated string that outlives the slice.
unsafe fn c_bytes<'s>(p: *const u8) -> Option<&'s [u8]> {
    (!p.is_null()).then(|| std::ffi::CStr::from_ptr(p.cast()).to_bytes())
}

/// A libyaml parser over one string.
pub(super) struct Parser<'a> {
    sys: Box<unsafe_libyaml::yaml_parser_t>,
    _input: &'a [u8],
    /// Anchors defined so far in the document.
    anchors: std::collections::HashSet<Vec<u8>>,
}

impl<'a> Parser<'a> {
    pub(super) fn new(input: &'a [u8]) -> Parser<'a> {
        // SAFETY: the parser is boxed so that its address is stable; the
        // input outlives the parser (lifetime 'a).
        unsafe {
            let mut sys: Box<std::mem::MaybeUninit<unsafe_libyaml::yaml_parser_t>> =
                Box::new(std::mem::MaybeUninit::uninit());
            let parser = sys.as_mut_ptr();
            if unsafe_libyaml::yaml_parser_initialize(parser).fail {
                // Only fails when allocation fails, which aborts anyway.
                std::process::abort();
            }
            unsafe_libyaml::yaml_parser_set_encoding(parser, unsafe_libyaml::YAML_UTF8_ENCODING);
            unsafe_libyaml::yaml_parser_set_input_string(
                parser,
                input.as_ptr(),
                input.len() as u64,
            );
            Parser {
                sys: Box::from_raw(Box::into_raw(sys).cast()),
                _input: input,
                anchors: std::collections::HashSet::new(),
            }
        }
    }

    /// The next event, `Ok(None)` at the end of the stream.
    pub(super) fn next(
        &mut self,
        values: &mut Vec<Vec<u8>>,
        keep: impl Fn(usize, usize) -> bool,
    ) -> Result<Option<Event>, (String, usize, Option<usize>)> {
        let mut event = std::mem::MaybeUninit::<unsafe_libyaml::yaml_event_t>::uninit();
        // SAFETY: the parser was initialised in `new`; the event is only
        // read after a successful parse and deleted once read.
        unsafe {
            let parser: *mut unsafe_libyaml::yaml_parser_t = addr_of_mut!(*self.sys);
            if unsafe_libyaml::yaml_parser_parse(parser, event.as_mut_ptr()).fail {
                let state: &unsafe_libyaml::yaml_parser_t = &*parser;
                let problem = state.problem;
                let context = state.context;
                let text = |p: *const std::ffi::c_char| {
                    (!p.is_null())
                        .then(|| std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned())
                };
                let message = match (text(context), text(problem)) {
                    (Some(c), Some(p)) => format!("{p} ({c})"),
                    (None, Some(p)) => p,
                    (Some(c), None) => c,
                    (None, None) => "syntax error".to_string(),
                };
                // The reader (bad characters) has an offset but no mark.
                let at = if state.error == unsafe_libyaml::YAML_READER_ERROR {
                    state.problem_offset as usize
                } else {
                    state.problem_mark.index as usize
                };
                let context_at = (!context.is_null()).then(|| state.context_mark.index as usize);
                return Err((message, at, context_at));
            }
            let e = &*event.as_ptr();
            let start = e.start_mark.index as usize;
            let end = e.end_mark.index as usize;
            let mut out = Event::blank(EventKind::Other, start, end);
            // Anchors and tags, as PyYAML's composer and constructor use them.
            let (anchor, tag) = match e.type_ {
                unsafe_libyaml::YAML_SCALAR_EVENT => (e.data.scalar.anchor, e.data.scalar.tag),
                unsafe_libyaml::YAML_SEQUENCE_START_EVENT => {
                    (e.data.sequence_start.anchor, e.data.sequence_start.tag)
                }
                unsafe_libyaml::YAML_MAPPING_START_EVENT => {
                    (e.data.mapping_start.anchor, e.data.mapping_start.tag)
                }
                _ => (std::ptr::null_mut(), std::ptr::null_mut()),
            };
            if let Some(a) = c_bytes(anchor) {
                self.anchors.insert(a.to_vec());
            }
            if c_bytes(tag).is_some_and(|t| !loadable_tag(t)) {
                out.unloadable = Some(
                    "could not determine a constructor for this tag (Mage's loader refuses it)",
                );
            }
            match e.type_ {
                unsafe_libyaml::YAML_DOCUMENT_START_EVENT => {
                    out.document = true;
                    self.anchors.clear();
                }
                unsafe_libyaml::YAML_ALIAS_EVENT
                    if !c_bytes(e.data.alias.anchor).is_some_and(|a| self.anchors.contains(a)) =>
                {
                    out.unloadable = Some("found undefined alias");
                }
                _ => {}
            }
            let done = e.type_ == unsafe_libyaml::YAML_STREAM_END_EVENT;
            match e.type_ {
                unsafe_libyaml::YAML_SCALAR_EVENT => {
                    let s = e.data.scalar;
                    out.kind = EventKind::Scalar;
                    out.plain = s.style == unsafe_libyaml::YAML_PLAIN_SCALAR_STYLE;
                    out.double_quoted = s.style == unsafe_libyaml::YAML_DOUBLE_QUOTED_SCALAR_STYLE;
                    out.block = s.style == unsafe_libyaml::YAML_LITERAL_SCALAR_STYLE
                        || s.style == unsafe_libyaml::YAML_FOLDED_SCALAR_STYLE;
                    out.plain_untagged = out.plain && s.tag.is_null();
                    out.properties = !s.tag.is_null() || !s.anchor.is_null();
                    if keep(start, end) {
                        let bytes = std::slice::from_raw_parts(s.value, s.length as usize);
                        values.push(bytes.to_vec());
                        out.value = Some(values.len() - 1);
                    }
                }
                unsafe_libyaml::YAML_ALIAS_EVENT => out.kind = EventKind::Alias,
                unsafe_libyaml::YAML_SEQUENCE_START_EVENT => {
                    out.kind = EventKind::CollectionStart;
                    out.flow =
                        e.data.sequence_start.style == unsafe_libyaml::YAML_FLOW_SEQUENCE_STYLE;
                    let q = e.data.sequence_start;
                    out.properties = !q.tag.is_null() || !q.anchor.is_null();
                }
                unsafe_libyaml::YAML_MAPPING_START_EVENT => {
                    out.kind = EventKind::CollectionStart;
                    out.mapping = true;
                    out.flow =
                        e.data.mapping_start.style == unsafe_libyaml::YAML_FLOW_MAPPING_STYLE;
                    let m = e.data.mapping_start;
                    out.properties = !m.tag.is_null() || !m.anchor.is_null();
                }
                unsafe_libyaml::YAML_SEQUENCE_END_EVENT
                | unsafe_libyaml::YAML_MAPPING_END_EVENT => out.kind = EventKind::CollectionEnd,
                _ => {}
            }
            unsafe_libyaml::yaml_event_delete(event.as_mut_ptr());
            Ok((!done).then_some(out))
        }
    }
}

impl Drop for Parser<'_> {
    fn drop(&mut self) {
        // SAFETY: initialised in `new`, deleted once.
        unsafe { unsafe_libyaml::yaml_parser_delete(addr_of_mut!(*self.sys)) }
    }
}
