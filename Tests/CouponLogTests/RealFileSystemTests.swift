import CouponLog
import Foundation
import Glibc
import Testing

@Suite struct RealFileSystemTests {
  let fileSystem = RealFileSystem()

  func mode(_ path: String) -> mode_t {
    var info = stat()
    _ = stat(path, &info)
    return info.st_mode & 0o777
  }

  @Test func writtenBytesReadBackAndSizeFollows() throws {
    let directory = try TestDirectory()
    let path = directory.file("data")
    let fd = try fileSystem.openFile(path, options: [.readWrite, .create, .exclusive])
    defer { fileSystem.close(fd) }
    let bytes = (0..<10_000).map { UInt8(truncatingIfNeeded: $0 * 7) }
    try bytes.withUnsafeBytes { try fileSystem.write(fd, $0, at: 100) }
    try fileSystem.syncData(fd)
    try fileSystem.sync(fd)
    #expect(try fileSystem.size(of: fd) == 10_100)
    var back = [UInt8](repeating: 1, count: 20_000)
    let count = try back.withUnsafeMutableBytes { try fileSystem.read(fd, into: $0, at: 100) }
    #expect(count == 10_000)
    #expect(Array(back.prefix(10_000)) == bytes)
    try fileSystem.truncate(fd, to: 50)
    #expect(try fileSystem.size(of: fd) == 50)
    #expect(try fileSystem.readWholeFile(path) == [UInt8](repeating: 0, count: 50))
  }

  @Test func createdFilesAreOwnerOnlyAndDirectoriesToo() throws {
    let directory = try TestDirectory()
    let path = directory.file("secret")
    fileSystem.close(try fileSystem.openFile(path, options: [.readWrite, .create]))
    #expect(mode(path) == 0o600)
    let sub = directory.file("store")
    try fileSystem.createDirectory(sub)
    #expect(mode(sub) == 0o700)
    try fileSystem.createDirectory(sub)  // exists already: fine
  }

  @Test func createDirectoryOverAFileFailsWithEEXIST() throws {
    let directory = try TestDirectory()
    let path = directory.file("file")
    fileSystem.close(try fileSystem.openFile(path, options: [.readWrite, .create]))
    #expect(throws: SystemCallError(syscall: "mkdir", errno: EEXIST, path: path)) {
      try fileSystem.createDirectory(path)
    }
  }

  @Test func failuresNameTheCallTheErrnoAndThePath() throws {
    let directory = try TestDirectory()
    let missing = directory.file("missing")
    #expect(throws: SystemCallError(syscall: "open", errno: ENOENT, path: missing)) {
      _ = try fileSystem.openFile(missing, options: .readOnly)
    }
    #expect(throws: SystemCallError(syscall: "unlink", errno: ENOENT, path: missing)) {
      try fileSystem.removeFile(missing)
    }
    #expect(throws: SystemCallError(syscall: "opendir", errno: ENOENT, path: missing)) {
      _ = try fileSystem.contentsOfDirectory(missing)
    }
    let exists = directory.file("exists")
    fileSystem.close(try fileSystem.openFile(exists, options: [.readWrite, .create]))
    #expect(throws: SystemCallError(syscall: "open", errno: EEXIST, path: exists)) {
      _ = try fileSystem.openFile(exists, options: [.readWrite, .create, .exclusive])
    }
    let readOnly = try fileSystem.openFile(exists, options: .readOnly)
    defer { fileSystem.close(readOnly) }
    #expect(throws: SystemCallError(syscall: "pwrite", errno: EBADF, path: exists)) {
      try [UInt8(1)].withUnsafeBytes { try fileSystem.write(readOnly, $0, at: 0) }
    }
    let description = SystemCallError(syscall: "open", errno: ENOENT, path: "/x").description
    #expect(description.contains("open") && description.contains("/x"))
  }

  @Test func directoryListingIsSortedNamesOnly() throws {
    let directory = try TestDirectory()
    for name in ["b", "a", "log-00000000000000000002.seg", "log-00000000000000000001.seg"] {
      fileSystem.close(
        try fileSystem.openFile(directory.file(name), options: [.readWrite, .create]))
    }
    #expect(
      try fileSystem.contentsOfDirectory(directory.path) == [
        "a", "b", "log-00000000000000000001.seg", "log-00000000000000000002.seg",
      ])
    try fileSystem.syncDirectory(directory.path)
  }

  @Test func renameAndRemoveChangeWhatExists() throws {
    let directory = try TestDirectory()
    let from = directory.file("tmp")
    let to = directory.file("final")
    fileSystem.close(try fileSystem.openFile(from, options: [.readWrite, .create]))
    try fileSystem.rename(from, to: to)
    #expect(!fileSystem.fileExists(from) && fileSystem.fileExists(to))
    try fileSystem.removeFile(to)
    #expect(!fileSystem.fileExists(to))
  }

  @Test func secondLockOfADirectoryFailsWithEWOULDBLOCK() throws {
    let directory = try TestDirectory()
    let lock = try fileSystem.lockDirectory(directory.path)
    #expect(mode(directory.file("LOCK")) == 0o600)
    #expect(
      throws: SystemCallError(syscall: "flock", errno: EWOULDBLOCK, path: directory.file("LOCK"))
    ) {
      _ = try fileSystem.lockDirectory(directory.path)
    }
    fileSystem.unlock(lock)
    let again = try fileSystem.lockDirectory(directory.path)
    fileSystem.unlock(again)
  }
}
