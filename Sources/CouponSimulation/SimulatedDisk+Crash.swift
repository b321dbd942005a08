// What a power loss leaves on the simulated disk.
//
// Synced state always survives. Of the changes made since a file's (or a directory's) last
// successful sync, the crash policy decides which reach the disk, drawing every choice from the
// caller's seeded generator:
//
// - `dropUnsynced`: none (the strictest "only fsync counts" reading);
// - `keepUnsynced`: all (a process crash with the kernel still running: the page cache survives);
// - `orderedWriteback`: per file, the first k pending changes (k uniform), and the next one, if it
//   is a write, torn half of the time; per directory, the first k name changes. This is the
//   ordering the log's torn-tail rule assumes (a crash tears only the end of the last append);
// - `anyWriteback`: per file, each pending change independently kept or dropped, and the file's
//   last write kept, dropped or torn; per directory, each name change independently. This is what
//   a disk that writes back dirty pages in any order can leave.
//
// A torn write keeps a prefix of its bytes (any length short of the whole); the rest of its range
// is then either left as it was, zero-filled, or filled with garbage, as a file extended by the
// write but not fully written back, or a sector half overwritten, would be.
//
// Names: a file whose name did not survive is gone, whatever happened to its data; a directory
// whose name did not survive takes everything under it along.

/// Which unsynced changes a simulated crash lets reach the disk.
public enum CrashPolicy: String, Sendable, Hashable, CaseIterable {
  /// Only synced data and names survive.
  case dropUnsynced
  /// Every unsynced change survives (a process crash: the operating system wrote everything).
  case keepUnsynced
  /// Per file, a prefix of the unsynced changes survives and the next write may be torn at any
  /// byte; per directory, a prefix of the name changes. What an ordered journal leaves.
  case orderedWriteback
  /// Any subset of each file's unsynced changes survives, and its last write may be torn; any
  /// subset of each directory's name changes. What out-of-order writeback can leave.
  case anyWriteback
}

/// What one simulated crash did, for checks and failure messages.
public struct CrashReport: Sendable, CustomStringConvertible {
  /// The policy the crash used.
  public var policy: CrashPolicy
  /// For every file of the new disk, by path: how many bytes of it were synced before the crash
  /// (the length of its durable contents then). Bytes at or beyond this offset were never synced:
  /// only there may a crash have left torn or missing data.
  public var syncedBytes: [String: Int] = [:]
  /// Unsynced file changes that survived in full.
  public var changesKept = 0
  /// Unsynced file changes that were lost.
  public var changesDropped = 0
  /// Writes that survived only in part.
  public var writesTorn = 0
  /// Unsynced name changes (create, rename, remove) that survived.
  public var nameChangesKept = 0
  /// Unsynced name changes that were lost.
  public var nameChangesDropped = 0

  /// One line: the policy and the counts.
  public var description: String {
    "crash(\(policy.rawValue): \(changesKept) changes kept, \(changesDropped) dropped, "
      + "\(writesTorn) torn; names \(nameChangesKept) kept, \(nameChangesDropped) dropped)"
  }
}

extension SimulatedDisk {
  /// The disk a power loss would leave, and what happened.
  func crashImage(policy: CrashPolicy, random: inout SimulationRandom) -> (
    SimulatedDisk, CrashReport
  ) {
    var report = CrashReport(policy: policy)
    // Decide in node order, so the draws do not depend on dictionary order.
    var fileImages: [Int: [UInt8]] = [:]
    for node in files.keys.sorted() {
      fileImages[node] = crashedContents(files[node]!, policy, &random, &report)
    }
    var directoryImages: [Int: [String: Int]] = [:]
    for node in directories.keys.sorted() {
      directoryImages[node] = crashedEntries(directories[node]!, policy, &random, &report)
    }

    var image = SimulatedDisk()
    image.nextNode = nextNode
    var visited: Set<Int> = []
    func walk(_ directory: Int, _ prefix: String) {
      guard visited.insert(directory).inserted else { return }
      let entries = directoryImages[directory]!
      image.directories[directory] = DirectoryNode(
        entries: entries, durableEntries: entries, pending: [])
      for (name, node) in entries {
        let path = prefix + "/" + name
        if directoryImages[node] != nil {
          walk(node, path)
        } else if let contents = fileImages[node] {
          image.files[node] = FileNode(data: contents, durable: contents, pending: [])
          report.syncedBytes[path] = files[node]!.durable.count
        }
      }
    }
    walk(SimulatedDisk.root, "")
    return (image, report)
  }

  private func crashedContents(
    _ file: FileNode, _ policy: CrashPolicy, _ random: inout SimulationRandom,
    _ report: inout CrashReport
  ) -> [UInt8] {
    var bytes = file.durable
    let changes = file.pending
    switch policy {
    case .dropUnsynced:
      report.changesDropped += changes.count
    case .keepUnsynced:
      for change in changes { change.apply(to: &bytes) }
      report.changesKept += changes.count
    case .orderedWriteback:
      let kept = random.int(in: 0...changes.count)
      for change in changes.prefix(kept) { change.apply(to: &bytes) }
      report.changesKept += kept
      report.changesDropped += changes.count - kept
      if kept < changes.count, case .write(let offset, let written) = changes[kept],
        random.chance(0.5)
      {
        tear(written, at: offset, into: &bytes, &random)
        report.writesTorn += 1
        report.changesDropped -= 1
      }
    case .anyWriteback:
      let lastWrite = changes.lastIndex {
        if case .write = $0 { true } else { false }
      }
      for (index, change) in changes.enumerated() {
        if index == lastWrite, case .write(let offset, let written) = change {
          switch random.below(3) {
          case 0:
            report.changesDropped += 1
          case 1:
            change.apply(to: &bytes)
            report.changesKept += 1
          default:
            tear(written, at: offset, into: &bytes, &random)
            report.writesTorn += 1
          }
        } else if random.chance(0.5) {
          change.apply(to: &bytes)
          report.changesKept += 1
        } else {
          report.changesDropped += 1
        }
      }
    }
    return bytes
  }

  /// Keeps a prefix of a write (possibly empty, never all of it); the rest of its range is left
  /// as it was, zeroed, or garbage.
  private func tear(
    _ written: [UInt8], at offset: Int, into bytes: inout [UInt8],
    _ random: inout SimulationRandom
  ) {
    guard !written.isEmpty else { return }
    let kept = random.below(written.count)
    writeBytes(written[..<kept], at: offset, into: &bytes)
    let rest = written.count - kept
    switch random.below(3) {
    case 0:
      break
    case 1:
      writeBytes(ArraySlice(repeating: 0, count: rest), at: offset + kept, into: &bytes)
    default:
      var garbage = [UInt8](repeating: 0, count: rest)
      for index in garbage.indices { garbage[index] = UInt8(truncatingIfNeeded: random.next()) }
      writeBytes(garbage[...], at: offset + kept, into: &bytes)
    }
  }

  private func crashedEntries(
    _ directory: DirectoryNode, _ policy: CrashPolicy, _ random: inout SimulationRandom,
    _ report: inout CrashReport
  ) -> [String: Int] {
    var entries = directory.durableEntries
    let changes = directory.pending
    let keep: [Bool]
    switch policy {
    case .dropUnsynced:
      keep = Array(repeating: false, count: changes.count)
    case .keepUnsynced:
      keep = Array(repeating: true, count: changes.count)
    case .orderedWriteback:
      let kept = random.int(in: 0...changes.count)
      keep = changes.indices.map { $0 < kept }
    case .anyWriteback:
      keep = changes.map { _ in random.chance(0.5) }
    }
    for (change, kept) in zip(changes, keep) {
      if kept {
        change.apply(to: &entries)
        report.nameChangesKept += 1
      } else {
        report.nameChangesDropped += 1
      }
    }
    return entries
  }
}
