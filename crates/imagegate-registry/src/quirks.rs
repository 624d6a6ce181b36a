//! What a registry's error answer means where the distribution spec leaves
//! room, or where registries answer differently from it: each reading named
//! once, here, with the registries known to answer so. The client and the
//! tag remover ask these instead of matching status codes inline.

use crate::error::Error;

/// The thing asked for (a manifest, a blob, a repository's tag list) is
/// not there: 404, whatever the error code (zuul-registry sends a bare
/// 404, distribution a `MANIFEST_UNKNOWN`, `BLOB_UNKNOWN` or `NAME_UNKNOWN`).
pub(crate) fn not_there(e: &Error) -> bool {
    e.status() == Some(404)
}

/// A tag list asked for in pages (`?n=`) answered 404 with no distribution
/// error code: zuul-registry's tag list takes no query parameters, and its
/// web framework (CherryPy) answers one it does not expect with a bare 404.
/// The list is asked once more without; a 404 then means no repository.
/// (Distribution answers a repository it lacks with `NAME_UNKNOWN`.)
pub(crate) fn page_size_refused(e: &Error) -> bool {
    e.status() == Some(404) && !e.has_code("NAME_UNKNOWN")
}

/// A cross-repository mount the registry declined as an error rather than
/// the spec's fallback (opening an ordinary upload, 202): 400 (a registry
/// that does not take the `mount` parameter), 404 (the blob or the source
/// repository unknown to it), 405 (no mounts at all). The blob is uploaded
/// instead.
pub(crate) fn mount_declined(e: &Error) -> bool {
    matches!(e.status(), Some(400 | 404 | 405))
}

/// The registry has no referrers API (OCI distribution spec 1.1), as
/// Debian's distribution 2.8 and zuul-registry have none: 405 or 501, or a
/// 404 without `NAME_UNKNOWN` (a registry with the API never answers 404
/// for a repository it has). It is not asked again in the same call.
pub(crate) fn lacks_referrers_api(e: &Error) -> bool {
    matches!(e.status(), Some(404 | 405 | 501)) && !e.has_code("NAME_UNKNOWN")
}

/// A referrers question the registry did not answer for this digest (400,
/// or 404 for an unknown repository): no referrers to carry, the API may
/// still be there.
pub(crate) fn no_referrers_here(e: &Error) -> bool {
    matches!(e.status(), Some(400 | 404))
}

/// A delete of something unknown answered as a registry that deletes
/// answers it: 404 `MANIFEST_UNKNOWN`. Distribution 2.8 answers the OCI tag
/// delete with `DIGEST_INVALID` (it deletes by digest only), zuul-registry
/// with a bare 404 (it deletes nothing): both mean "not supported".
pub(crate) fn deletes_answered_as_supported(e: &Error) -> bool {
    e.status() == Some(404) && e.has_code("MANIFEST_UNKNOWN")
}

/// A whole-blob upload refused for its size (413), as a registry behind a
/// proxy with a request body limit refuses it: the blob goes in chunks.
pub(crate) fn body_too_large(e: &Error) -> bool {
    e.status() == Some(413)
}
