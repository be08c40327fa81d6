// Package upload copies a migration environment onto a device over an SSH
// session (see Session; *remote.Client is one): a local directory or a
// .tgz/.tar.gz/.tar archive streamed without unpacking, sent over SFTP, or
// as a tar stream into `tar xpf -` when the device has no SFTP. Files
// already on the device are skipped, a file an earlier upload left
// half-sent is completed, and files arrive under their final names only
// once complete.
//
//	src, err := upload.NewSource("/srv/migrate/env")
//	stats, err := upload.Run(ctx, client, src, "migrate", upload.Options{})
package upload
