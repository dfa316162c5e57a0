//! `s3s-fs` plus `ListMultipartUploads`, which `s3s-fs` lacks: without it
//! the worker's sweep of unfinished uploads never runs against these
//! servers. Every other operation is `s3s-fs`'s own. Pending uploads are
//! read from the metadata files `s3s-fs` keeps for them
//! (`.bucket-{b64}.object-{b64}.upload-{id}.metadata.json`, removed on
//! completion or abort); the file's time is the upload's start.

use std::path::{Path, PathBuf};

use s3s::dto::*;
use s3s::{S3, S3Request, S3Response, S3Result};

pub struct ListingFs {
    fs: s3s_fs::FileSystem,
    root: PathBuf,
    /// Ignore `If-None-Match` on PUT, as Garage 1.x does (overwrite, 200).
    ignore_conditions: bool,
}

impl ListingFs {
    pub fn new(root: &Path) -> Result<ListingFs, String> {
        let fs = s3s_fs::FileSystem::new(root).map_err(|e| format!("{e:?}"))?;
        Ok(ListingFs {
            fs,
            root: root.to_path_buf(),
            ignore_conditions: false,
        })
    }

    /// A server that ignores `If-None-Match` on PUT (like Garage 1.x).
    pub fn ignoring_conditions(mut self) -> Self {
        self.ignore_conditions = true;
        self
    }

    /// `(key, upload id, started)` of every pending upload in `bucket`.
    fn pending(&self, bucket: &str) -> Vec<(String, String, std::time::SystemTime)> {
        let Ok(entries) = std::fs::read_dir(&self.root) else {
            return Vec::new();
        };
        let want = format!(".bucket-{}.object-", b64url_encode(bucket.as_bytes()));
        let mut out: Vec<_> = entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let rest = name.strip_prefix(&want)?.strip_suffix(".metadata.json")?;
                let (key, id) = rest.split_once(".upload-")?;
                let key = String::from_utf8(b64url_decode(key)?).ok()?;
                let started = e.metadata().and_then(|m| m.modified()).ok()?;
                Some((key, id.to_string(), started))
            })
            .collect();
        out.sort();
        out
    }
}

/// Methods handed to `s3s-fs` as they are, spelled as `async_trait`
/// expands them (the attribute does not see inside a macro).
macro_rules! delegate {
    ($($name:ident: $input:ty => $output:ty;)*) => {$(
        fn $name<'life0, 'async_trait>(
            &'life0 self,
            req: S3Request<$input>,
        ) -> std::pin::Pin<Box<dyn std::future::Future<Output = S3Result<S3Response<$output>>> + Send + 'async_trait>>
        where
            'life0: 'async_trait,
            Self: 'async_trait,
        {
            self.fs.$name(req)
        }
    )*};
}

#[async_trait::async_trait]
impl S3 for ListingFs {
    delegate! {
        create_bucket: CreateBucketInput => CreateBucketOutput;
        copy_object: CopyObjectInput => CopyObjectOutput;
        delete_bucket: DeleteBucketInput => DeleteBucketOutput;
        delete_object: DeleteObjectInput => DeleteObjectOutput;
        delete_objects: DeleteObjectsInput => DeleteObjectsOutput;
        get_bucket_location: GetBucketLocationInput => GetBucketLocationOutput;
        get_object: GetObjectInput => GetObjectOutput;
        head_bucket: HeadBucketInput => HeadBucketOutput;
        head_object: HeadObjectInput => HeadObjectOutput;
        list_buckets: ListBucketsInput => ListBucketsOutput;
        list_objects: ListObjectsInput => ListObjectsOutput;
        list_objects_v2: ListObjectsV2Input => ListObjectsV2Output;
        create_multipart_upload: CreateMultipartUploadInput => CreateMultipartUploadOutput;
        upload_part: UploadPartInput => UploadPartOutput;
        upload_part_copy: UploadPartCopyInput => UploadPartCopyOutput;
        list_parts: ListPartsInput => ListPartsOutput;
        complete_multipart_upload: CompleteMultipartUploadInput => CompleteMultipartUploadOutput;
        abort_multipart_upload: AbortMultipartUploadInput => AbortMultipartUploadOutput;
    }

    async fn put_object(
        &self,
        mut req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        if self.ignore_conditions {
            req.input.if_none_match = None;
        }
        self.fs.put_object(req).await
    }

    async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        let input = req.input;
        let prefix = input.prefix.clone().unwrap_or_default();
        let uploads: Vec<MultipartUpload> = self
            .pending(&input.bucket)
            .into_iter()
            .filter(|(key, _, _)| key.starts_with(&prefix))
            .map(|(key, id, started)| MultipartUpload {
                key: Some(key),
                upload_id: Some(id),
                initiated: Some(Timestamp::from(started)),
                ..Default::default()
            })
            .collect();
        Ok(S3Response::new(ListMultipartUploadsOutput {
            bucket: Some(input.bucket),
            prefix: input.prefix,
            is_truncated: Some(false),
            uploads: Some(uploads),
            ..Default::default()
        }))
    }
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn b64url_encode(data: &[u8]) -> String {
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

fn b64url_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    for chunk in text.as_bytes().chunks(4) {
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            let v = ALPHABET.iter().position(|a| a == c)? as u32;
            n |= v << (18 - 6 * i);
        }
        let bytes = chunk.len().checked_sub(1)?;
        out.extend((0..bytes).map(|i| (n >> (16 - 8 * i)) as u8));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips() {
        for s in [
            "",
            "a",
            "ab",
            "abc",
            "abcd",
            "ws/ab/key.mp4",
            ".rehost/staging/x",
        ] {
            assert_eq!(
                b64url_decode(&b64url_encode(s.as_bytes())).as_deref(),
                Some(s.as_bytes())
            );
        }
        assert_eq!(b64url_encode(b"media"), "bWVkaWE");
    }
}
