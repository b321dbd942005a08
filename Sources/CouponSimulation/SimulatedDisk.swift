// The simulated disk's data model: files and directories, each with what the running system sees
// and what would survive a power loss.
//
// A file node holds `data` (what reads return: the page cache) and `durable` (what is on the
// platter), plus `pending`, the changes (writes and truncations) made since the last successful
// sync, in order. A sync applies `pending` to `durable`. After a failed sync the pending changes
// are dropped without being applied (as Linux marks the dirty pages clean after a writeback
// error), so from then on `data` holds bytes that no later sync will make durable: the 2018
// "fsyncgate" behaviour that makes a failed `fdatasync` fatal.
//
// A directory node holds `entries` (name → node, what lookups see) and `durableEntries`, plus its
// `pending` name changes (link, unlink, rename). A directory sync makes `durableEntries` equal to
// `entries`; file syncs never touch names, so a new file whose directory was not synced vanishes
// in a crash even if its data was synced, exactly as POSIX allows.
//
// A crash (`crashImage`) builds the next disk from `durable` and `durableEntries` plus a subset of
// the pending changes chosen by the crash policy and a seeded generator, then keeps only what is
// reachable from the root through the surviving names.
//
// Paths are absolute; a relative path is taken from the root (the simulation has no working
// directory). `.` and `..` are resolved by name, and repeated slashes are ignored.

import Glibc

/// One change to a file since its last successful sync.
enum FileChange: Sendable {
  case write(offset: Int, bytes: [UInt8])
  case truncate(length: Int)

  func apply(to bytes: inout [UInt8]) {
    switch self {
    case .write(let offset, let written):
      writeBytes(written[...], at: offset, into: &bytes)
    case .truncate(let length):
      if length < bytes.count {
        bytes.removeSubrange(length...)
      } else {
        bytes.append(contentsOf: repeatElement(0, count: length - bytes.count))
      }
    }
  }
}

/// Writes `source` at `offset`, zero-filling any gap past the end (as `pwrite` past EOF does).
func writeBytes(_ source: ArraySlice<UInt8>, at offset: Int, into bytes: inout [UInt8]) {
  if offset > bytes.count {
    bytes.append(contentsOf: repeatElement(0, count: offset - bytes.count))
  }
  let overlap = min(source.count, bytes.count - offset)
  if overlap > 0 {
    bytes.replaceSubrange(offset..<offset + overlap, with: source.prefix(overlap))
  }
  if overlap < source.count {
    bytes.append(contentsOf: source.dropFirst(overlap))
  }
}

/// One change to a directory's names since its last successful sync.
enum DirectoryChange: Sendable {
  case link(name: String, node: Int)
  case unlink(name: String)
  case rename(from: String, to: String)

  func apply(to entries: inout [String: Int]) {
    switch self {
    case .link(let name, let node):
      entries[name] = node
    case .unlink(let name):
      entries[name] = nil
    case .rename(let from, let to):
      // A rename whose source did not survive (its creation was lost) changes nothing.
      guard let node = entries[from] else { return }
      entries[from] = nil
      entries[to] = node
    }
  }
}

struct FileNode: Sendable {
  var data: [UInt8] = []
  var durable: [UInt8] = []
  var pending: [FileChange] = []
}

struct DirectoryNode: Sendable {
  var entries: [String: Int] = [:]
  var durableEntries: [String: Int] = [:]
  var pending: [DirectoryChange] = []
}

/// Files and directories of the simulated disk, by node number. Node 0 is the root directory,
/// which always exists.
struct SimulatedDisk: Sendable {
  static let root = 0

  var files: [Int: FileNode] = [:]
  var directories: [Int: DirectoryNode] = [SimulatedDisk.root: DirectoryNode()]
  var nextNode = 1

  /// The components of `path` after resolving `.`, `..` and repeated slashes.
  static func components(_ path: String) -> [String] {
    var parts: [String] = []
    for part in path.split(separator: "/", omittingEmptySubsequences: true) {
      if part == "." { continue }
      if part == ".." {
        if !parts.isEmpty { parts.removeLast() }
        continue
      }
      parts.append(String(part))
    }
    return parts
  }

  /// The canonical form of `path`: `/a/b`.
  static func canonical(_ path: String) -> String {
    "/" + components(path).joined(separator: "/")
  }

  /// The node at `path`, or the errno of the failed lookup (`ENOENT`, `ENOTDIR`).
  func lookup(_ path: String) -> Result<Int, Errno> {
    var node = SimulatedDisk.root
    for part in SimulatedDisk.components(path) {
      guard let directory = directories[node] else { return .failure(Errno(ENOTDIR)) }
      guard let child = directory.entries[part] else { return .failure(Errno(ENOENT)) }
      node = child
    }
    return .success(node)
  }

  /// The directory that holds (or would hold) `path`, and the last component's name.
  func parent(of path: String) -> Result<(directory: Int, name: String), Errno> {
    var parts = SimulatedDisk.components(path)
    guard let name = parts.popLast() else { return .failure(Errno(EEXIST)) }  // the root
    switch lookup("/" + parts.joined(separator: "/")) {
    case .failure(let error): return .failure(error)
    case .success(let node):
      guard directories[node] != nil else { return .failure(Errno(ENOTDIR)) }
      return .success((node, name))
    }
  }

  /// Adds a name to a directory, pending until that directory is synced.
  mutating func link(_ name: String, to node: Int, in directory: Int) {
    directories[directory]!.entries[name] = node
    directories[directory]!.pending.append(.link(name: name, node: node))
  }

  /// Removes a name from a directory, pending until that directory is synced.
  mutating func unlink(_ name: String, in directory: Int) {
    directories[directory]!.entries[name] = nil
    directories[directory]!.pending.append(.unlink(name: name))
  }

  /// Creates an empty file node (not yet named anywhere).
  mutating func newFile() -> Int {
    defer { nextNode += 1 }
    files[nextNode] = FileNode()
    return nextNode
  }

  /// Creates an empty directory node (not yet named anywhere).
  mutating func newDirectory() -> Int {
    defer { nextNode += 1 }
    directories[nextNode] = DirectoryNode()
    return nextNode
  }

  /// Applies a change to a file's cached contents and queues it for the next sync.
  mutating func change(_ node: Int, _ change: FileChange) {
    change.apply(to: &files[node]!.data)
    files[node]!.pending.append(change)
  }

  /// A successful `fdatasync`/`fsync`: every pending change of the file reaches `durable`.
  mutating func syncFile(_ node: Int) {
    var file = files.removeValue(forKey: node)!
    for change in file.pending { change.apply(to: &file.durable) }
    file.pending.removeAll()
    files[node] = file
  }

  /// A failed sync: the first `persisted` pending changes reached the disk before the error, the
  /// others are dropped and never will (they stay in `data`, readable until a crash).
  mutating func failSyncFile(_ node: Int, persisted: Int) {
    var file = files.removeValue(forKey: node)!
    for change in file.pending.prefix(persisted) { change.apply(to: &file.durable) }
    file.pending.removeAll()
    files[node] = file
  }

  /// A successful directory sync: its names as they are now become durable.
  mutating func syncDirectory(_ node: Int) {
    directories[node]!.durableEntries = directories[node]!.entries
    directories[node]!.pending.removeAll()
  }

  /// A failed directory sync: only the first `persisted` pending name changes became durable;
  /// the rest stay pending (a later sync may still persist them).
  mutating func failSyncDirectory(_ node: Int, persisted: Int) {
    var directory = directories[node]!
    for change in directory.pending.prefix(persisted) {
      change.apply(to: &directory.durableEntries)
    }
    directory.pending.removeFirst(min(persisted, directory.pending.count))
    directories[node] = directory
  }

  /// Every file reachable from the root, by canonical path, in path order.
  func filePaths() -> [(path: String, node: Int)] {
    var result: [(String, Int)] = []
    func walk(_ directory: Int, _ prefix: String) {
      for (name, node) in directories[directory]!.entries.sorted(by: { $0.key < $1.key }) {
        let path = prefix + "/" + name
        if directories[node] != nil {
          walk(node, path)
        } else {
          result.append((path, node))
        }
      }
    }
    walk(SimulatedDisk.root, "")
    return result
  }
}

/// An errno value as a `Error`, for the disk model's results.
struct Errno: Error, Sendable, Equatable {
  var code: Int32
  init(_ code: Int32) { self.code = code }
}
