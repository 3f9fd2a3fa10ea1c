//! The assembler: `.masm` text to a verified program, through the [`Builder`].
//!
//! Grammar (one statement per line; `;` starts a comment):
//!
//! ```text
//! line        = { label ":" } [ directive | instruction ] [ ";" comment ]
//! directive   = ".program" NAME
//!             | ".input" NAME INPUT_KIND [ "indexed" ]
//!             | ".output" NAME OUTPUT_KIND
//!             | ".const" NAME FLOAT
//! instruction = MNEMONIC [ operand { "," operand } ]
//! operand     = REGISTER | NAME | FLOAT
//! REGISTER    = ( "f" | "b" | "g" | "c" ) DIGITS
//! NAME        = ( letter | "_" ) { letter | digit | "_" }
//! FLOAT       = [ "+" | "-" ] ( DECIMAL | "inf" ) | "nan"
//! DECIMAL     = ( DIGITS [ "." [ DIGITS ] ] | "." DIGITS ) [ ( "e" | "E" ) [ "+" | "-" ] DIGITS ]
//! ```
//!
//! Directives may appear anywhere; inputs and outputs take ids in the order they are
//! declared. A mnemonic shared by several ops (`mov`, `store`, `select`, `isnull`, `probe`)
//! is resolved by the register files and number of its operands. Every error is reported,
//! not just the first, as `FILE:LINE:COL: error: MESSAGE` with a caret line.

use std::collections::HashMap;

use crate::builder::{Builder, Label};
use crate::diag::{Diagnostic, Diagnostics};
use crate::opcode::Opcode;
use crate::operand::{OperandArg, OperandKind, RegFile};
use crate::program::{check_name, is_register_name, InputKind, OutputKind, CANONICAL_NAN_BITS};
use crate::verify::{verify, VerifiedProgram, VerifyError, VerifyErrorKind};

/// Assembles `source` (named `file` in diagnostics) and verifies the result.
///
/// ```
/// let err = meridian_bytecode::assemble("bad.masm", ".program p\n.input x points\n    frob f0\n")
///     .unwrap_err();
/// assert_eq!(err.0[0].headline(), "bad.masm:3:5: error: unknown mnemonic `frob`");
/// ```
pub fn assemble(file: &str, source: &str) -> Result<VerifiedProgram, Diagnostics> {
    let mut asm = Assembler { file, lines: source.lines().collect(), diags: Vec::new() };
    let parsed: Vec<Line<'_>> = (0..asm.lines.len()).filter_map(|i| asm.parse_line(i)).collect();
    let result = asm.build(&parsed);
    let mut diags = asm.diags;
    diags.sort_by_key(|d| (d.line, d.col));
    match result {
        Some(program) if diags.is_empty() => Ok(program),
        _ => Err(Diagnostics(diags)),
    }
}

/// A token: its kind, text, and 1-based character column.
#[derive(Clone, Copy, Debug)]
struct Tok<'s> {
    kind: TokKind,
    text: &'s str,
    line: u32,
    col: u32,
}

impl Tok<'_> {
    fn len(&self) -> u32 {
        self.text.chars().count().max(1) as u32
    }

    fn describe(&self) -> String {
        match self.kind {
            TokKind::Ident if is_register_name(self.text) => format!("register `{}`", self.text),
            TokKind::Ident if is_float_keyword(self.text) => format!("number `{}`", self.text),
            TokKind::Ident => format!("name `{}`", self.text),
            TokKind::Number => format!("number `{}`", self.text),
            TokKind::Directive => format!("directive `{}`", self.text),
            TokKind::Comma => "`,`".to_owned(),
            TokKind::Colon => "`:`".to_owned(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TokKind {
    Ident,
    Number,
    Directive,
    Comma,
    Colon,
}

/// A parsed source line.
struct Line<'s> {
    labels: Vec<Tok<'s>>,
    body: Body<'s>,
}

enum Body<'s> {
    Empty,
    Directive { name: Tok<'s>, args: Vec<Tok<'s>> },
    Instr { mnemonic: Tok<'s>, operands: Vec<Tok<'s>> },
}

/// Where an instruction came from, for mapping verifier errors back to the source.
struct InstrSpan<'s> {
    mnemonic: Tok<'s>,
    /// Per operand (in the op's operand order): its first and last token.
    operands: Vec<(Tok<'s>, Tok<'s>)>,
}

struct Assembler<'s> {
    file: &'s str,
    lines: Vec<&'s str>,
    diags: Vec<Diagnostic>,
}

fn is_float_keyword(s: &str) -> bool {
    s == "nan" || s == "inf"
}

impl<'s> Assembler<'s> {
    fn error_at(&mut self, line: u32, col: u32, len: u32, message: impl Into<String>) {
        let source_line = self.lines.get(line as usize - 1).copied().unwrap_or("").to_owned();
        self.diags.push(Diagnostic {
            file: self.file.to_owned(),
            line,
            col,
            len: len.max(1),
            message: message.into(),
            source_line,
        });
    }

    fn error(&mut self, tok: &Tok<'_>, message: impl Into<String>) {
        self.error_at(tok.line, tok.col, tok.len(), message);
    }

    /// Splits line `index` into tokens; reports a bad character and gives up on the line.
    fn lex(&mut self, index: usize) -> Option<Vec<Tok<'s>>> {
        let text = self.lines[index];
        let code = text.split(';').next().unwrap_or("");
        let line = index as u32 + 1;
        let chars: Vec<(usize, char)> = code.char_indices().collect();
        let mut toks = Vec::new();
        let mut i = 0;
        while i < chars.len() {
            let (start, c) = chars[i];
            let col = i as u32 + 1;
            let next = chars.get(i + 1).map(|&(_, c)| c);
            let word = |i: usize| {
                let mut j = i;
                while j < chars.len() && (chars[j].1.is_ascii_alphanumeric() || chars[j].1 == '_') {
                    j += 1;
                }
                j
            };
            let (kind, end) = if c.is_whitespace() {
                i += 1;
                continue;
            } else if c == ',' {
                (TokKind::Comma, i + 1)
            } else if c == ':' {
                (TokKind::Colon, i + 1)
            } else if c == '.' && next.is_some_and(|n| n.is_ascii_alphabetic()) {
                (TokKind::Directive, word(i + 1))
            } else if c.is_ascii_alphabetic() || c == '_' {
                (TokKind::Ident, word(i))
            } else if c.is_ascii_digit()
                || ((c == '+' || c == '-' || c == '.')
                    && next.is_some_and(|n| n.is_ascii_alphanumeric() || n == '.'))
            {
                // A number runs over letters, digits and dots, and a sign right after an
                // exponent marker; `parse_float` judges the shape.
                let mut j = i + 1;
                while j < chars.len() {
                    let d = chars[j].1;
                    let after_exp = matches!(chars[j - 1].1, 'e' | 'E') && (d == '+' || d == '-');
                    if d.is_ascii_alphanumeric() || d == '.' || d == '_' || after_exp {
                        j += 1;
                    } else {
                        break;
                    }
                }
                (TokKind::Number, j)
            } else {
                self.error_at(line, col, 1, format!("unexpected character `{c}`"));
                return None;
            };
            let end_byte = chars.get(end).map_or(code.len(), |&(b, _)| b);
            toks.push(Tok { kind, text: &code[start..end_byte], line, col });
            i = end;
        }
        Some(toks)
    }

    fn parse_line(&mut self, index: usize) -> Option<Line<'s>> {
        let toks = self.lex(index)?;
        let mut rest = &toks[..];
        let mut labels = Vec::new();
        while let [name, colon, tail @ ..] = rest {
            if name.kind != TokKind::Ident || colon.kind != TokKind::Colon {
                break;
            }
            labels.push(*name);
            rest = tail;
        }
        let body = match rest {
            [] => Body::Empty,
            [first, args @ ..] if first.kind == TokKind::Directive => {
                if let Some(bad) = args.iter().find(|t| t.kind != TokKind::Ident && t.kind != TokKind::Number)
                {
                    self.error(
                        bad,
                        format!(
                            "unexpected {} in a directive (directive arguments are separated by spaces)",
                            bad.describe()
                        ),
                    );
                    return None;
                }
                Body::Directive { name: *first, args: args.to_vec() }
            }
            [first, args @ ..] if first.kind == TokKind::Ident => {
                let mut operands = Vec::new();
                let mut expect_operand = true;
                for t in args {
                    match (t.kind, expect_operand) {
                        (TokKind::Ident | TokKind::Number, true) => {
                            operands.push(*t);
                            expect_operand = false;
                        }
                        (TokKind::Comma, false) => expect_operand = true,
                        (TokKind::Comma, true) => {
                            self.error(t, "expected an operand before `,`");
                            return None;
                        }
                        (_, false) => {
                            self.error(t, format!("expected `,` between operands, found {}", t.describe()));
                            return None;
                        }
                        (_, true) => {
                            self.error(t, format!("expected an operand, found {}", t.describe()));
                            return None;
                        }
                    }
                }
                if expect_operand && !operands.is_empty() {
                    let last = args.last().copied().unwrap_or(*first);
                    self.error(&last, "expected an operand after `,`");
                    return None;
                }
                Body::Instr { mnemonic: *first, operands }
            }
            [first, ..] => {
                self.error(
                    first,
                    format!("expected a directive, label or mnemonic, found {}", first.describe()),
                );
                return None;
            }
        };
        Some(Line { labels, body })
    }

    /// Runs the passes over parsed lines; returns the verified program if nothing went wrong.
    fn build(&mut self, lines: &[Line<'s>]) -> Option<VerifiedProgram> {
        // Pass 1: the program's name, then the other directives in order.
        let mut program_name: Option<Tok<'s>> = None;
        for line in lines {
            let Body::Directive { name, args } = &line.body else { continue };
            if name.text != ".program" {
                continue;
            }
            match &args[..] {
                [n] if n.kind == TokKind::Ident => {
                    if program_name.is_some() {
                        self.error(name, "`.program` appears twice");
                    } else if let Err(e) = check_name("program", n.text) {
                        self.error(n, e.to_string());
                    } else {
                        program_name = Some(*n);
                    }
                }
                _ => self.error(name, "expected `.program NAME`"),
            }
        }
        let Some(program_tok) = program_name else {
            if !self.diags.is_empty() {
                return None;
            }
            let line =
                self.lines.iter().position(|l| !l.trim().is_empty() && !l.trim_start().starts_with(';'));
            self.error_at(line.map_or(1, |l| l as u32 + 1), 1, 1, "missing `.program NAME` directive");
            return None;
        };
        let mut builder = Builder::new(program_tok.text);
        let mut inputs: Vec<Tok<'s>> = Vec::new();
        let mut outputs: Vec<Tok<'s>> = Vec::new();
        let mut consts: HashMap<&'s str, f64> = HashMap::new();
        for line in lines {
            let Body::Directive { name, args } = &line.body else { continue };
            match (name.text, &args[..]) {
                (".program", _) => {}
                (".input", [n, k, rest @ ..]) if rest.len() <= 1 => {
                    let indexed = match rest {
                        [] => false,
                        [t] if t.text == "indexed" => true,
                        [t] => {
                            self.error(
                                t,
                                format!("expected `indexed` or the end of the line, found {}", t.describe()),
                            );
                            continue;
                        }
                        _ => continue,
                    };
                    let Some(kind) = InputKind::from_keyword(k.text) else {
                        self.error(
                            k,
                            format!(
                                "unknown input kind `{}` (expected points, polygons, lines or geometry)",
                                k.text
                            ),
                        );
                        continue;
                    };
                    let declared = if indexed {
                        builder.indexed_input(n.text, kind)
                    } else {
                        builder.input(n.text, kind)
                    };
                    match declared {
                        Ok(_) => inputs.push(*n),
                        Err(e) => self.error(n, e.to_string()),
                    }
                }
                (".input", _) => self.error(name, "expected `.input NAME KIND [indexed]`"),
                (".output", [n, k]) => {
                    let Some(kind) = OutputKind::from_keyword(k.text) else {
                        self.error(
                            k,
                            format!(
                                "unknown output kind `{}` (expected f64, bool, geometry, hits, count or sum)",
                                k.text
                            ),
                        );
                        continue;
                    };
                    match builder.output(n.text, kind) {
                        Ok(_) => outputs.push(*n),
                        Err(e) => self.error(n, e.to_string()),
                    }
                }
                (".output", _) => self.error(name, "expected `.output NAME KIND`"),
                (".const", [n, v]) => {
                    if let Err(e) = check_name("constant", n.text) {
                        self.error(n, e.to_string());
                        continue;
                    }
                    let Some(value) = self.number(v) else { continue };
                    if consts.insert(n.text, value).is_some() {
                        self.error(n, format!("constant `{}` is defined twice", n.text));
                    }
                }
                (".const", _) => self.error(name, "expected `.const NAME VALUE`"),
                _ => self.error(
                    name,
                    format!(
                        "unknown directive `{}` (expected .program, .input, .output or .const)",
                        name.text
                    ),
                ),
            }
        }
        // Pass 2: label definitions, so jumps may refer forward.
        let mut labels: HashMap<&'s str, (Label, Tok<'s>)> = HashMap::new();
        for tok in lines.iter().flat_map(|l| &l.labels) {
            if let Err(e) = check_name("label", tok.text) {
                self.error(tok, e.to_string());
            } else if let Some((_, first)) = labels.get(tok.text) {
                let msg = format!("label `{}` is defined twice (first at line {})", tok.text, first.line);
                self.error(tok, msg);
            } else {
                labels.insert(tok.text, (builder.label(), *tok));
            }
        }

        // Pass 3: instructions.
        let mut spans: Vec<InstrSpan<'s>> = Vec::new();
        for line in lines {
            for tok in &line.labels {
                if let Some((label, def)) = labels.get(tok.text) {
                    if def.line == tok.line && def.col == tok.col {
                        builder.bind(*label);
                    }
                }
            }
            let Body::Instr { mnemonic, operands } = &line.body else { continue };
            let Some((opcode, groups)) = self.resolve(mnemonic, operands) else { continue };
            let mut args = Vec::with_capacity(groups.len());
            let mut ok = true;
            for (kind, toks) in opcode.operands().iter().zip(&groups) {
                match self.operand(*kind, toks, &builder, &consts, &labels) {
                    Some(arg) => args.push(arg),
                    None => ok = false,
                }
            }
            if ok {
                builder.push(opcode, &args);
                let operands = groups.iter().map(|g| (g[0], g[g.len() - 1])).collect();
                spans.push(InstrSpan { mnemonic: *mnemonic, operands });
            }
        }
        if !self.diags.is_empty() {
            return None;
        }
        let program = match builder.finish_unverified() {
            Ok(p) => p,
            // Labels and names were checked above; what is left (too many constants or
            // instructions) belongs to the program as a whole.
            Err(e) => {
                self.error(&program_tok, e.to_string());
                return None;
            }
        };
        match verify(&program) {
            Ok(v) => Some(v),
            Err(errors) => {
                for e in errors.0 {
                    self.report_verify_error(e, &spans, &program_tok, &inputs, &outputs);
                }
                None
            }
        }
    }

    /// Picks the op for a mnemonic from its operands, and groups operand tokens per operand.
    fn resolve(&mut self, mnemonic: &Tok<'s>, operands: &[Tok<'s>]) -> Option<(Opcode, Vec<Vec<Tok<'s>>>)> {
        let candidates: Vec<Opcode> =
            Opcode::ALL.iter().copied().filter(|o| o.mnemonic() == mnemonic.text).collect();
        if candidates.is_empty() {
            self.error(mnemonic, format!("unknown mnemonic `{}`", mnemonic.text));
            return None;
        }
        let arity = |o: &Opcode| o.operands().iter().map(|k| k.syntax_width()).sum::<usize>();
        let same_arity: Vec<Opcode> =
            candidates.iter().copied().filter(|o| arity(o) == operands.len()).collect();
        if same_arity.is_empty() {
            let mut counts: Vec<usize> = candidates.iter().map(arity).collect();
            counts.sort_unstable();
            counts.dedup();
            let counts: Vec<String> = counts.iter().map(usize::to_string).collect();
            let msg = format!(
                "`{}` takes {} operand{}, found {}",
                mnemonic.text,
                counts.join(" or "),
                if counts.len() == 1 && counts[0] == "1" { "" } else { "s" },
                operands.len()
            );
            self.error(mnemonic, msg);
            return None;
        }
        // The first operand that does not fit each candidate; the best candidate fits all.
        let mut best: Option<(usize, Opcode, OperandKind)> = None;
        for &op in &same_arity {
            let mut at = 0;
            let mut mismatch = None;
            for kind in op.operands() {
                for tok in &operands[at..at + kind.syntax_width()] {
                    if !fits(*kind, tok) {
                        mismatch = Some((at, *kind));
                        break;
                    }
                    at += 1;
                }
                if mismatch.is_some() {
                    break;
                }
            }
            match mismatch {
                None => {
                    let mut groups = Vec::new();
                    let mut at = 0;
                    for kind in op.operands() {
                        groups.push(operands[at..at + kind.syntax_width()].to_vec());
                        at += kind.syntax_width();
                    }
                    return Some((op, groups));
                }
                Some((index, kind)) if best.is_none_or(|(b, _, _)| index > b) => {
                    best = Some((index, op, kind))
                }
                Some(_) => {}
            }
        }
        let (index, op, kind) = best?;
        let tok = operands[index];
        let mut msg = format!(
            "operand {} of `{}` must be {}, found {}",
            index + 1,
            mnemonic.text,
            expected(kind),
            tok.describe()
        );
        if candidates.len() > 1 {
            let forms: Vec<String> = candidates.iter().map(|o| o.syntax()).collect();
            msg.push_str(&format!(" (forms: {})", forms.join("; ")));
        } else {
            msg.push_str(&format!(" (`{}`)", op.syntax()));
        }
        self.error(&tok, msg);
        None
    }

    /// The builder argument for one operand, or an error at its token.
    fn operand(
        &mut self,
        kind: OperandKind,
        toks: &[Tok<'s>],
        builder: &Builder,
        consts: &HashMap<&str, f64>,
        labels: &HashMap<&str, (Label, Tok<'s>)>,
    ) -> Option<OperandArg> {
        let tok = toks[0];
        match kind {
            OperandKind::Reg { .. } => match tok.text[1..].parse::<u8>() {
                Ok(index) => Some(OperandArg::Raw(u32::from(index))),
                Err(_) => {
                    self.error(&tok, format!("register index `{}` is too large", &tok.text[1..]));
                    None
                }
            },
            OperandKind::Input { .. } => {
                if let Some(i) = builder.inputs().iter().position(|d| d.name == tok.text) {
                    return Some(OperandArg::Raw(i as u32));
                }
                let what = if builder.outputs().iter().any(|d| d.name == tok.text) {
                    format!("`{}` is an output, not an input", tok.text)
                } else {
                    format!("unknown input `{}`", tok.text)
                };
                self.error(&tok, what);
                None
            }
            OperandKind::Output(_) => {
                if let Some(i) = builder.outputs().iter().position(|d| d.name == tok.text) {
                    return Some(OperandArg::Raw(i as u32));
                }
                let what = if builder.inputs().iter().any(|d| d.name == tok.text) {
                    format!("`{}` is an input, not an output", tok.text)
                } else {
                    format!("unknown output `{}`", tok.text)
                };
                self.error(&tok, what);
                None
            }
            OperandKind::Const => self.constant(&tok, consts).map(OperandArg::Const),
            OperandKind::Matrix => {
                let mut m = [0.0; 6];
                let mut ok = true;
                for (slot, tok) in m.iter_mut().zip(toks) {
                    match self.constant(tok, consts) {
                        Some(v) => *slot = v,
                        None => ok = false,
                    }
                }
                ok.then_some(OperandArg::Matrix(m))
            }
            OperandKind::Jump => match labels.get(tok.text) {
                Some((label, _)) => Some(OperandArg::Label(*label)),
                None => {
                    self.error(&tok, format!("undefined label `{}`", tok.text));
                    None
                }
            },
        }
    }

    fn constant(&mut self, tok: &Tok<'s>, consts: &HashMap<&str, f64>) -> Option<f64> {
        if tok.kind == TokKind::Number || is_float_keyword(tok.text) {
            return self.number(tok);
        }
        match consts.get(tok.text) {
            Some(v) => Some(*v),
            None => {
                self.error(
                    tok,
                    format!("unknown constant `{}` (declare it with `.const {} VALUE`)", tok.text, tok.text),
                );
                None
            }
        }
    }

    fn number(&mut self, tok: &Tok<'s>) -> Option<f64> {
        match parse_float(tok.text) {
            Ok(v) => Some(v),
            Err(why) => {
                self.error(tok, format!("bad float literal `{}`: {why}", tok.text));
                None
            }
        }
    }

    fn report_verify_error(
        &mut self,
        e: VerifyError,
        spans: &[InstrSpan<'s>],
        program: &Tok<'s>,
        inputs: &[Tok<'s>],
        outputs: &[Tok<'s>],
    ) {
        let message = e.kind.to_string();
        let whole = |t: &Tok<'_>| (t.line, t.col, t.len());
        let at = match (&e.kind, e.pc) {
            (VerifyErrorKind::OutputNeverWritten { id, .. }, _) => outputs.get(*id as usize).map(whole),
            (VerifyErrorKind::RowSourceIndexed { .. }, _) => inputs.first().map(whole),
            (_, Some(pc)) => spans.get(pc as usize).map(|s| {
                match e.operand.and_then(|o| s.operands.get(usize::from(o))) {
                    // Underline the whole operand (six tokens for a matrix).
                    Some((first, last)) => (first.line, first.col, last.col + last.len() - first.col),
                    None => whole(&s.mnemonic),
                }
            }),
            (_, None) => None,
        };
        let (line, col, len) = at.unwrap_or_else(|| whole(program));
        self.error_at(line, col, len, message);
    }
}

/// Whether a token can stand for an operand of `kind` (its shape, not its meaning).
fn fits(kind: OperandKind, tok: &Tok<'_>) -> bool {
    let is_name = tok.kind == TokKind::Ident && !is_register_name(tok.text) && !is_float_keyword(tok.text);
    match kind {
        OperandKind::Reg { file, .. } => {
            tok.kind == TokKind::Ident
                && is_register_name(tok.text)
                && tok.text.chars().next().and_then(RegFile::from_prefix) == Some(file)
        }
        OperandKind::Input { .. } | OperandKind::Output(_) | OperandKind::Jump => is_name,
        OperandKind::Const | OperandKind::Matrix => {
            is_name || tok.kind == TokKind::Number || is_float_keyword(tok.text)
        }
    }
}

fn expected(kind: OperandKind) -> String {
    match kind {
        OperandKind::Reg { file, .. } => {
            format!("a{} {file} register", if file == RegFile::F { "n" } else { "" })
        }
        OperandKind::Input { indexed: false } => "an input name".to_owned(),
        OperandKind::Input { indexed: true } => "an indexed input name".to_owned(),
        OperandKind::Output(k) => format!("the name of a {k} output"),
        OperandKind::Const => "a number or constant name".to_owned(),
        OperandKind::Matrix => "a number (six make the affine matrix)".to_owned(),
        OperandKind::Jump => "a label".to_owned(),
    }
}

/// Parses a float literal of the assembly grammar: `1`, `1.5`, `-2e-3`, `.5`, `nan`, `inf`,
/// `-inf`. `nan` is the canonical quiet NaN; it takes no sign.
pub(crate) fn parse_float(text: &str) -> Result<f64, &'static str> {
    let (negative, body) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let sign = if negative { -1.0 } else { 1.0 };
    match body {
        "nan" if body.len() == text.len() => return Ok(f64::from_bits(CANONICAL_NAN_BITS)),
        "nan" => return Err("`nan` takes no sign"),
        "inf" => return Ok(sign * f64::INFINITY),
        _ => {}
    }
    let b = body.as_bytes();
    let digits = |mut i: usize| {
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        (i, i - start)
    };
    let (mut i, int_digits) = digits(0);
    let mut frac_digits = 0;
    if i < b.len() && b[i] == b'.' {
        (i, frac_digits) = digits(i + 1);
    }
    if int_digits + frac_digits == 0 {
        return Err("expected digits");
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        let (end, exp_digits) = digits(i);
        if exp_digits == 0 {
            return Err("the exponent has no digits");
        }
        i = end;
    }
    if i != b.len() {
        return Err("unexpected characters after the number");
    }
    let value: f64 = body.parse().map_err(|_| "not a number")?;
    if value.is_infinite() {
        return Err("out of range for f64 (write `inf` for infinity)");
    }
    Ok(sign * value)
}

#[cfg(test)]
mod tests {
    use super::parse_float;

    #[test]
    fn float_literals() {
        assert_eq!(parse_float("1.5"), Ok(1.5));
        assert_eq!(parse_float("-2e-3"), Ok(-2e-3));
        assert_eq!(parse_float("+.5"), Ok(0.5));
        assert_eq!(parse_float("7."), Ok(7.0));
        assert_eq!(parse_float("-0.0").map(f64::to_bits), Ok((-0.0f64).to_bits()));
        assert_eq!(parse_float("-inf"), Ok(f64::NEG_INFINITY));
        assert_eq!(parse_float("inf"), Ok(f64::INFINITY));
        assert!(parse_float("nan").is_ok_and(f64::is_nan));
        assert!(parse_float("-nan").is_err());
        assert!(parse_float("1e400").is_err());
        assert!(parse_float("1e").is_err());
        assert!(parse_float("1.2.3").is_err());
        assert!(parse_float("0x10").is_err());
        assert!(parse_float(".").is_err());
        assert!(parse_float("-").is_err());
        assert!(parse_float("infinity").is_err());
    }
}
