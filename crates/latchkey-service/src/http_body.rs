//! Reading the body of a response to one of the service's own outgoing
//! requests (metadata documents, upstream providers) with a byte limit that
//! is enforced while reading, so an endless or oversized answer costs at
//! most the limit.

/// Why a bounded body could not be read.
#[derive(Debug)]
pub(crate) enum BodyError {
    /// The body is longer than the limit.
    TooLarge,
    /// The transport failed while reading.
    Read(reqwest::Error),
}

/// Reads `response`'s body, refusing it once it exceeds `limit` bytes.
pub(crate) async fn read_bounded(
    response: &mut reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, BodyError> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(BodyError::Read)? {
        if body.len() + chunk.len() > limit {
            return Err(BodyError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
