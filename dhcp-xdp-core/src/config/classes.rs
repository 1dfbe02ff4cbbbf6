//! `[[client-class]]` and what refers to classes: tests compiled once (errors naming the line
//! and the column in the test), the class names of `client-class`/`client-classes` guards and
//! of reservations turned into bit sets, and boot fields.

use toml::Spanned;

use super::{
    BootFields, ClientClass, ConfigError, OptionTable,
    build::{Ctx, Section},
    file::ClientClassSection,
};
use crate::classify::{Expr, MAX_CLASSES};

/// Boot fields from a section's `next-server`, `server-hostname`, `boot-file-name`.
pub(super) fn boot(
    ctx: &Ctx<'_>,
    field: &str,
    next_server: Option<&Spanned<String>>,
    server_hostname: Option<&Spanned<String>>,
    boot_file_name: Option<&Spanned<String>>,
) -> Result<BootFields, ConfigError> {
    let text = |v: Option<&Spanned<String>>, name: &str, max: usize| -> Result<Option<Vec<u8>>, ConfigError> {
        match v {
            Some(s) if s.get_ref().len() > max => Err(ctx.err(
                Some(s.span()),
                &format!("{field}.{name}"),
                format!("at most {max} bytes (the BOOTP field's size less its terminating zero)"),
            )),
            Some(s) => Ok(Some(s.get_ref().as_bytes().to_vec())),
            None => Ok(None),
        }
    };
    Ok(BootFields {
        next_server: next_server.map(|v| ctx.ip(v, &format!("{field}.next-server"))).transpose()?,
        server_hostname: text(server_hostname, "server-hostname", 63)?,
        boot_file_name: text(boot_file_name, "boot-file-name", 127)?,
    })
}

/// The classes' bit set for a guard or a reservation's list: `client-class` (one name) and
/// `client-classes` (several), each a class defined in `[[client-class]]`.
pub(super) fn bits(
    ctx: &Ctx<'_>,
    field: &str,
    classes: &[ClientClass],
    one: Option<&Spanned<String>>,
    many: Option<&[Spanned<String>]>,
) -> Result<u64, ConfigError> {
    let mut out = 0u64;
    for (name, sub) in one
        .into_iter()
        .map(|n| (n, "client-class"))
        .chain(many.unwrap_or_default().iter().map(|n| (n, "client-classes")))
    {
        match classes.iter().position(|c| c.name == *name.get_ref()) {
            Some(i) => out |= 1 << i,
            None => {
                return Err(ctx.err(
                    Some(name.span()),
                    &format!("{field}.{sub}"),
                    format!("no [[client-class]] named '{}'", name.get_ref()),
                ));
            }
        }
    }
    Ok(out)
}

/// Validates `[[client-class]]` in order: unique names, tests that parse (and name only
/// classes defined before), options and boot fields.
pub(super) fn build(ctx: &Ctx<'_>, sections: &[ClientClassSection]) -> Result<Vec<ClientClass>, ConfigError> {
    if sections.len() > MAX_CLASSES {
        return Err(ctx.err(
            sections.get(MAX_CLASSES).map(|s| s.name.span()),
            "client-class",
            format!("at most {MAX_CLASSES} classes"),
        ));
    }
    let mut out: Vec<ClientClass> = vec![];
    for (i, c) in sections.iter().enumerate() {
        let field = format!("client-class[{i}]");
        let name = c.name.get_ref().trim().to_owned();
        if name.is_empty() || name == "KNOWN" || name == "UNKNOWN" || name.starts_with("VENDOR_CLASS_") {
            return Err(ctx.err(
                Some(c.name.span()),
                &format!("{field}.name"),
                format!("'{name}' is not a name a class may have (empty or built in)"),
            ));
        }
        if out.iter().any(|o| o.name == name) {
            return Err(ctx.err(
                Some(c.name.span()),
                &format!("{field}.name"),
                format!("class '{name}' is defined twice"),
            ));
        }
        let earlier: Vec<String> = out.iter().map(|o| o.name.clone()).collect();
        let test =
            match &c.test {
                Some(t) => Some(Expr::parse(t.get_ref(), &earlier).map_err(|e| {
                    ctx.err(Some(t.span()), &format!("{field}.test"), format!("{e} of `{}`", t.get_ref()))
                })?),
                None => None,
            };
        let options = OptionTable::try_from(Section::new(ctx, format!("{field}.options"), &c.options))?;
        let boot = boot(ctx, &field, c.next_server.as_ref(), c.server_hostname.as_ref(), c.boot_file_name.as_ref())?;
        out.push(ClientClass { name, test, options, boot });
    }
    Ok(out)
}
