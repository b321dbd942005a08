// A deterministic, in-memory disk behind the `FileSystem` seam: it loses unsynced data in
// crashes, tears writes, fails operations on cue and flips bits, so that tests can prove the log's
// and the engine's durability rules the way FoundationDB's and TigerBeetle's simulators and
// LevelDB's fault-injection environment do.
//
// The model (SimulatedDisk.swift): each file has cached contents and durable contents, and the
// changes between them wait for `syncData`/`sync`; each directory has visible names and durable
// names, and the changes between them wait for `syncDirectory`. `crash(policy:random:)` powers
// this instance off and returns a new one holding what the disk would hold after the power loss
// (SimulatedDisk+Crash.swift). Every operation that can fail is counted, so a test can inject a
// fault "at operation N" and loop N = 1, 2, 3 … in the style of SQLite's I/O error tests, or power
// the disk off at operation N to crash a running store at an exact point.
//
// Determinism: every choice the disk makes (which unsynced changes a crash keeps, where a write
// tears, how much of a failed write or sync got through) comes from seeded generators. Given the
// same sequence of operations, the same seeds give the same disk. (When several threads call in,
// the order of their operations is theirs to decide, not the disk's.)
//
// Thread safety: one `Mutex` guards the whole state, and every operation runs entirely under it,
// so operations are atomic with respect to each other and to a crash.

import CouponLog
import Glibc
import Synchronization

/// An in-memory file system with a page cache, power loss, fault injection and bit flips,
/// deterministic from a seed. Plug it into the store with `CouponStore.Options.fileSystem`.
///
/// ```swift
/// var random = SimulationRandom(seed: seed)
/// let disk = SimulatedFileSystem(seed: random.next())
/// disk.powerOff(atOperation: 40)                       // the 40th operation and all later fail
/// // ... run a store on `disk`; it stops with an I/O error at operation 40 ...
/// let rebooted = disk.crash(policy: .anyWriteback, random: &random)
/// // ... open a store on `rebooted` and check that every acknowledged write is there ...
/// ```
///
/// Semantics, in brief:
/// - `write` changes the cached contents at once; the change reaches the durable contents on the
///   next successful `syncData` or `sync` of the file. Creating, renaming and removing names
///   become durable on the next `syncDirectory` of the directory holding them (a file sync does
///   not make its name durable; `createDirectory` needs a sync of the parent).
/// - A failed sync loses the file's unsynced changes for good (Linux's behaviour after a
///   writeback error): reads still return them, but no later sync makes them durable.
/// - `lockDirectory` locks are per instance, like `flock` per open file description: a second
///   lock of the same directory fails with `EWOULDBLOCK` until the first is released. A crash
///   or ``copy()`` starts with no locks held (the process that held them is gone).
/// - Paths are absolute (a relative path is taken from the root); directories cannot be renamed;
///   renaming a file to another directory is two name changes, one per directory.
/// - After a power-off every operation fails with `EIO` and changes nothing; `close` and `unlock`
///   still release descriptors.
public final class SimulatedFileSystem: FileSystem {
  struct Descriptor {
    var node: Int
    var path: String
    var writable: Bool
  }

  struct TraceEntry {
    var number: Int
    var kind: SimulatedOperation
    var path: String
    var detail: String
    var outcome: String
  }

  /// Everything mutable, under one lock.
  struct Machine {
    var disk: SimulatedDisk
    var random: SimulationRandom
    var descriptors: [Int32: Descriptor] = [:]
    var nextDescriptor: Int32 = 3
    /// Locked LOCK-file nodes and the descriptor holding each lock.
    var locks: [Int: Int32] = [:]
    var operationCount = 0
    var faults: [SimulatedFault] = []
    var fired: [FiredFault] = []
    var powerOffAt: Int?
    var powerOffKinds: Set<SimulatedOperation> = []
    var poweredOff = false
    /// The operation that cut the power, and the name of the thread that made it.
    var powerOffOperation: (kind: SimulatedOperation, path: String, thread: String?)?
    var renameCount = 0
    var trace: [TraceEntry] = []

    static let traceMax = 64

    /// Counts an operation and decides its fate: throws if the disk is (or now goes) dark,
    /// returns the injected error if a fault fires (the operation applies its partial effect,
    /// then throws it), or `nil` to go ahead.
    mutating func begin(_ kind: SimulatedOperation, _ path: String, _ detail: String = "")
      throws(SystemCallError) -> SystemCallError?
    {
      if poweredOff { throw SystemCallError(syscall: kind.syscall, errno: EIO, path: path) }
      operationCount += 1
      let number = operationCount
      if let powerOffAt, number >= powerOffAt,
        powerOffKinds.isEmpty || powerOffKinds.contains(kind)
      {
        poweredOff = true
        powerOffOperation = (kind, path, currentThreadName())
        record(number, kind, path, detail, "power off")
        throw SystemCallError(syscall: kind.syscall, errno: EIO, path: path)
      }
      if let index = faults.firstIndex(where: { $0.matches(kind, number: number) }) {
        let fault = faults[index]
        if !fault.persistent { faults.remove(at: index) }
        fired.append(
          FiredFault(
            operation: number, kind: kind, errno: fault.errno, path: path,
            thread: currentThreadName()))
        record(number, kind, path, detail, "fault errno \(fault.errno)")
        return SystemCallError(syscall: kind.syscall, errno: fault.errno, path: path)
      }
      record(number, kind, path, detail, "ok")
      return nil
    }

    mutating func record(
      _ number: Int, _ kind: SimulatedOperation, _ path: String, _ detail: String,
      _ outcome: String
    ) {
      if trace.count == Machine.traceMax { trace.removeFirst() }
      trace.append(
        TraceEntry(number: number, kind: kind, path: path, detail: detail, outcome: outcome))
    }

    func descriptor(_ fd: FileDescriptor) -> Descriptor {
      guard let descriptor = descriptors[fd.rawValue] else {
        preconditionFailure("descriptor \(fd.rawValue) is not open on this simulated disk")
      }
      return descriptor
    }
  }

  private let machine: Mutex<Machine>

  /// What the crash that produced this instance did, or `nil` for a fresh disk or a ``copy()``.
  public let crashReport: CrashReport?

  /// An empty disk (only the root directory `/` exists) whose own choices (how much of a failed
  /// write or sync gets through) are drawn from `seed`.
  public convenience init(seed: UInt64) {
    self.init(disk: SimulatedDisk(), random: SimulationRandom(seed: seed), crashReport: nil)
  }

  init(disk: SimulatedDisk, random: SimulationRandom, crashReport: CrashReport?) {
    self.machine = Mutex(Machine(disk: disk, random: random))
    self.crashReport = crashReport
  }

  /// The canonical form of a path as this file system names it (`/a/b`): the form used by
  /// ``CrashReport/syncedBytes``, ``files()`` and ``BitFlip``.
  public static func canonicalPath(_ path: String) -> String {
    SimulatedDisk.canonical(path)
  }

  // MARK: Control

  /// How many countable operations have been made on this instance (the last one's number).
  public var operationCount: Int { machine.withLock { $0.operationCount } }

  /// Arms a fault; it fires on the first matching operation (see ``SimulatedFault``).
  public func inject(_ fault: SimulatedFault) {
    machine.withLock { $0.faults.append(fault) }
  }

  /// Disarms every fault that has not fired (and stops persistent ones).
  public func clearFaults() {
    machine.withLock { $0.faults.removeAll() }
  }

  /// The faults that fired, in order.
  public var firedFaults: [FiredFault] { machine.withLock { $0.fired } }

  /// Cuts the power when the first operation numbered `operation` or later whose kind is in
  /// `kinds` (any kind if empty) starts: it and every later operation fail with `EIO` and change
  /// nothing, so the disk's state is frozen as it was just before it. Call
  /// ``crash(policy:random:)`` afterwards to get the disk the power loss leaves.
  ///
  /// Aiming at a kind (`[.syncDirectory]`: while a new file is being created; `[.syncData]`:
  /// while a batch is being made durable) puts crashes in the narrow windows where ordering bugs
  /// live, which uniformly chosen operation numbers hit rarely.
  public func powerOff(atOperation operation: Int, kinds: Set<SimulatedOperation> = []) {
    machine.withLock { machine in
      precondition(
        operation > machine.operationCount,
        "operation \(operation) has already happened (count \(machine.operationCount))")
      machine.powerOffAt = operation
      machine.powerOffKinds = kinds
    }
  }

  /// Cuts the power now (see ``powerOff(atOperation:)``).
  public func powerOff() {
    machine.withLock { $0.poweredOff = true }
  }

  /// Whether the power is off (every operation fails).
  public var isPoweredOff: Bool { machine.withLock { $0.poweredOff } }

  /// How many renames succeeded on this instance (a store renames only finished snapshots into
  /// place, so this counts the snapshots it wrote).
  public var renameCount: Int { machine.withLock { $0.renameCount } }

  /// The operation that cut the power (armed with ``powerOff(atOperation:kinds:)``): its kind,
  /// its path and the name of the thread that made it; `nil` if the power is on or was cut by
  /// ``powerOff()`` or ``crash(policy:random:)``.
  public var powerOffOperation: (kind: SimulatedOperation, path: String, thread: String?)? {
    machine.withLock { $0.powerOffOperation }
  }

  /// Powers this disk off (if it is not already) and returns a new disk holding what a power loss
  /// at this moment leaves: every synced byte and name, and the unsynced changes `policy` and
  /// `random` let through. The new disk has no open descriptors, no locks, no faults, an
  /// operation count of 0, and a ``crashReport``; its own choices are drawn from `random` too.
  public func crash(policy: CrashPolicy, random: inout SimulationRandom) -> SimulatedFileSystem {
    let disk = machine.withLock { machine in
      machine.poweredOff = true
      return machine.disk
    }
    let (image, report) = disk.crashImage(policy: policy, random: &random)
    return SimulatedFileSystem(disk: image, random: random.split(), crashReport: report)
  }

  /// An independent disk in exactly this state, unsynced changes included, with no descriptors,
  /// locks or faults and an operation count of 0: the machine after its process restarted
  /// without a power loss (the page cache survives), or a fork of a state for a fuzzer to explore
  /// from. Its own choices are drawn from `seed`.
  public func copy(seed: UInt64) -> SimulatedFileSystem {
    let disk = machine.withLock { $0.disk }
    return SimulatedFileSystem(
      disk: disk, random: SimulationRandom(seed: seed), crashReport: nil)
  }

  /// One file of the disk.
  public struct FileInfo: Sendable, Hashable {
    /// Canonical path.
    public var path: String
    /// Current length (what `size(of:)` returns).
    public var bytes: Int
    /// Length of the durable contents (what a crash is sure to keep).
    public var syncedBytes: Int
    /// Unsynced changes waiting for a sync.
    public var pendingChanges: Int
  }

  /// Every file reachable by name, in path order.
  public func files() -> [FileInfo] {
    machine.withLock { machine in
      machine.disk.filePaths().map { path, node in
        let file = machine.disk.files[node]!
        return FileInfo(
          path: path, bytes: file.data.count, syncedBytes: file.durable.count,
          pendingChanges: file.pending.count)
      }
    }
  }

  /// The contents of the file at `path` as reads see them, or `nil` if there is no such file.
  public func contents(of path: String) -> [UInt8]? {
    machine.withLock { machine in
      guard case .success(let node) = machine.disk.lookup(path) else { return nil }
      return machine.disk.files[node]?.data
    }
  }

  /// The durable contents of the file at `path`, or `nil` if there is no such file.
  public func syncedContents(of path: String) -> [UInt8]? {
    machine.withLock { machine in
      guard case .success(let node) = machine.disk.lookup(path) else { return nil }
      return machine.disk.files[node]?.durable
    }
  }

  /// Flips one bit in a file's durable contents (and in its cached contents, as if the cache had
  /// been reread from the damaged sector). Traps if the byte is not durable: a latent sector
  /// error damages what is on the disk.
  public func flip(_ flip: BitFlip) {
    machine.withLock { machine in
      guard case .success(let node) = machine.disk.lookup(flip.path),
        var file = machine.disk.files[node]
      else { preconditionFailure("flip: no file at \(flip.path)") }
      precondition(
        flip.offset >= 0 && flip.offset < file.durable.count,
        "flip: byte \(flip.offset) of \(flip.path) is not durable (\(file.durable.count) bytes)")
      file.durable[flip.offset] ^= 1 << UInt8(flip.bit)
      if flip.offset < file.data.count { file.data[flip.offset] ^= 1 << UInt8(flip.bit) }
      machine.disk.files[node] = file
    }
  }

  /// A bit chosen uniformly among the durable bytes of the files whose path satisfies `filter`
  /// (each file weighted by its durable length), or `nil` if they hold none.
  public func randomSyncedBit(
    random: inout SimulationRandom, where filter: (String) -> Bool = { _ in true }
  ) -> BitFlip? {
    let candidates = files().filter { $0.syncedBytes > 0 && filter($0.path) }
    let total = candidates.reduce(0) { $0 + $1.syncedBytes }
    guard total > 0 else { return nil }
    var position = random.below(total)
    for file in candidates {
      if position < file.syncedBytes {
        return BitFlip(path: file.path, offset: position, bit: random.below(8))
      }
      position -= file.syncedBytes
    }
    preconditionFailure("unreachable: position within the total")
  }

  /// The last operations (up to 64), oldest first, one line each: number, call, path, detail and
  /// outcome. For failure messages.
  public var recentOperations: [String] {
    machine.withLock { machine in
      machine.trace.map { entry in
        let detail = entry.detail.isEmpty ? "" : " " + entry.detail
        return "#\(entry.number) \(entry.kind.rawValue)(\(entry.path))\(detail) → \(entry.outcome)"
      }
    }
  }

  /// How many descriptors are open (locks included).
  public var openDescriptorCount: Int { machine.withLock { $0.descriptors.count } }

  /// Runs one operation under the lock, noting in the trace how it failed if it did.
  private func operate<T: Sendable>(
    _ body: (inout Machine) throws(SystemCallError) -> T
  ) throws(SystemCallError) -> T {
    try machine.withLock { machine throws(SystemCallError) -> T in
      do throws(SystemCallError) {
        return try body(&machine)
      } catch {
        if let last = machine.trace.indices.last, machine.trace[last].outcome == "ok" {
          machine.trace[last].outcome = "\(error.syscall) errno \(error.errno)"
        }
        throw error
      }
    }
  }

  // MARK: FileSystem

  /// Opens or creates a file. Opening a directory fails with `EISDIR`.
  public func openFile(_ path: String, options: OpenOptions) throws(SystemCallError)
    -> FileDescriptor
  {
    let readOnly = options.contains(.readOnly)
    precondition(
      readOnly != options.contains(.readWrite),
      "open \(path): exactly one of .readOnly and .readWrite is required")
    return try operate { machine throws(SystemCallError) -> FileDescriptor in
      if let error = try machine.begin(.openFile, path) { throw error }
      return try machine.open(path, options: options, syscall: "open")
    }
  }

  /// Releases a descriptor (and the lock it holds, if any).
  public func close(_ fd: FileDescriptor) {
    machine.withLock { machine in
      guard let descriptor = machine.descriptors.removeValue(forKey: fd.rawValue) else {
        preconditionFailure("close: descriptor \(fd.rawValue) is not open")
      }
      if machine.locks[descriptor.node] == fd.rawValue { machine.locks[descriptor.node] = nil }
    }
  }

  /// Writes at `offset` into the cache; durable after the next successful sync of the file.
  public func write(_ fd: FileDescriptor, _ bytes: UnsafeRawBufferPointer, at offset: Int64)
    throws(SystemCallError)
  {
    precondition(offset >= 0, "pwrite at negative offset \(offset)")
    let written = [UInt8](bytes)
    try operate { machine throws(SystemCallError) in
      let descriptor = machine.descriptor(fd)
      precondition(descriptor.writable, "pwrite on read-only descriptor \(fd.rawValue)")
      if let error = try machine.begin(
        .write, descriptor.path, "\(written.count) bytes at \(offset)")
      {
        // A short write, then the error: any prefix of the bytes got into the cache.
        let partial = written.isEmpty ? 0 : machine.random.below(written.count)
        if partial > 0 {
          machine.disk.change(
            descriptor.node, .write(offset: Int(offset), bytes: Array(written.prefix(partial))))
        }
        throw error
      }
      if !written.isEmpty {
        machine.disk.change(descriptor.node, .write(offset: Int(offset), bytes: written))
      }
    }
  }

  /// Reads from the cache; fewer bytes than the buffer holds only at end of file.
  public func read(
    _ fd: FileDescriptor, into buffer: UnsafeMutableRawBufferPointer, at offset: Int64
  )
    throws(SystemCallError) -> Int
  {
    precondition(offset >= 0, "pread at negative offset \(offset)")
    return try operate { machine throws(SystemCallError) -> Int in
      let descriptor = machine.descriptor(fd)
      if let error = try machine.begin(.read, descriptor.path, "\(buffer.count) at \(offset)") {
        throw error
      }
      let data = machine.disk.files[descriptor.node]!.data
      guard offset < Int64(data.count), buffer.count > 0 else { return 0 }
      let count = min(buffer.count, data.count - Int(offset))
      data.withUnsafeBytes { source in
        buffer.baseAddress!.copyMemory(
          from: source.baseAddress! + Int(offset), byteCount: count)
      }
      return count
    }
  }

  /// Makes the file's unsynced changes durable (`fdatasync`).
  public func syncData(_ fd: FileDescriptor) throws(SystemCallError) {
    try syncFile(fd, .syncData)
  }

  /// Makes the file's unsynced changes durable (`fsync`; the same as ``syncData(_:)`` here, since
  /// the model keeps no metadata besides the length, which `fdatasync` covers too).
  public func sync(_ fd: FileDescriptor) throws(SystemCallError) {
    try syncFile(fd, .sync)
  }

  private func syncFile(_ fd: FileDescriptor, _ kind: SimulatedOperation) throws(SystemCallError) {
    try operate { machine throws(SystemCallError) in
      let descriptor = machine.descriptor(fd)
      let pending = machine.disk.files[descriptor.node]!.pending.count
      if let error = try machine.begin(kind, descriptor.path, "\(pending) changes") {
        let persisted = machine.random.int(in: 0...pending)
        machine.disk.failSyncFile(descriptor.node, persisted: persisted)
        throw error
      }
      machine.disk.syncFile(descriptor.node)
    }
  }

  /// Sets the file's length in the cache; durable after the next successful sync of the file.
  public func truncate(_ fd: FileDescriptor, to length: Int64) throws(SystemCallError) {
    precondition(length >= 0, "ftruncate to negative length \(length)")
    try operate { machine throws(SystemCallError) in
      let descriptor = machine.descriptor(fd)
      precondition(descriptor.writable, "ftruncate on read-only descriptor \(fd.rawValue)")
      if let error = try machine.begin(.truncate, descriptor.path, "to \(length)") { throw error }
      machine.disk.change(descriptor.node, .truncate(length: Int(length)))
    }
  }

  /// The file's current (cached) length.
  public func size(of fd: FileDescriptor) throws(SystemCallError) -> Int64 {
    try operate { machine throws(SystemCallError) -> Int64 in
      let descriptor = machine.descriptor(fd)
      if let error = try machine.begin(.size, descriptor.path) { throw error }
      return Int64(machine.disk.files[descriptor.node]!.data.count)
    }
  }

  /// Renames a file, replacing any file at `to`; durable once the directory (or, across
  /// directories, both directories) is synced.
  public func rename(_ from: String, to: String) throws(SystemCallError) {
    try operate { machine throws(SystemCallError) in
      if let error = try machine.begin(.rename, from, "to \(to)") { throw error }
      func failure(_ code: Int32) -> SystemCallError {
        SystemCallError(syscall: "rename", errno: code, path: from)
      }
      let node = try machine.disk.lookup(from).get("rename", from)
      guard machine.disk.files[node] != nil else { throw failure(EINVAL) }
      let source = try machine.disk.parent(of: from).get("rename", from)
      let target = try machine.disk.parent(of: to).get("rename", from)
      if let existing = machine.disk.directories[target.directory]!.entries[target.name] {
        if existing == node { return }
        if machine.disk.directories[existing] != nil { throw failure(EISDIR) }
      }
      if source.directory == target.directory {
        machine.disk.directories[source.directory]!.entries[source.name] = nil
        machine.disk.directories[source.directory]!.entries[target.name] = node
        machine.disk.directories[source.directory]!.pending.append(
          .rename(from: source.name, to: target.name))
      } else {
        machine.disk.unlink(source.name, in: source.directory)
        machine.disk.link(target.name, to: node, in: target.directory)
      }
      machine.renameCount += 1
    }
  }

  /// Removes a file's name; durable once its directory is synced. Open descriptors keep the
  /// file's contents reachable.
  public func removeFile(_ path: String) throws(SystemCallError) {
    try operate { machine throws(SystemCallError) in
      if let error = try machine.begin(.removeFile, path) { throw error }
      let node = try machine.disk.lookup(path).get("unlink", path)
      if machine.disk.directories[node] != nil {
        throw SystemCallError(syscall: "unlink", errno: EISDIR, path: path)
      }
      let parent = try machine.disk.parent(of: path).get("unlink", path)
      machine.disk.unlink(parent.name, in: parent.directory)
    }
  }

  /// The names in a directory, sorted by their UTF-8 bytes.
  public func contentsOfDirectory(_ path: String) throws(SystemCallError) -> [String] {
    try operate { machine throws(SystemCallError) -> [String] in
      if let error = try machine.begin(.listDirectory, path) { throw error }
      let node = try machine.disk.lookup(path).get("opendir", path)
      guard let directory = machine.disk.directories[node] else {
        throw SystemCallError(syscall: "opendir", errno: ENOTDIR, path: path)
      }
      return directory.entries.keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
    }
  }

  /// Creates a directory (an existing one is not an error); its name is durable once the parent
  /// directory is synced.
  public func createDirectory(_ path: String) throws(SystemCallError) {
    try operate { machine throws(SystemCallError) in
      if let error = try machine.begin(.createDirectory, path) { throw error }
      func failure(_ code: Int32) -> SystemCallError {
        SystemCallError(syscall: "mkdir", errno: code, path: path)
      }
      switch machine.disk.lookup(path) {
      case .success(let node):
        if machine.disk.directories[node] == nil { throw failure(EEXIST) }
        return
      case .failure(let error) where error.code != ENOENT:
        throw failure(error.code)
      case .failure:
        break
      }
      let parent = try machine.disk.parent(of: path).get("mkdir", path)
      let node = machine.disk.newDirectory()
      machine.disk.link(parent.name, to: node, in: parent.directory)
    }
  }

  /// Whether a file or directory exists at `path` (not counted; cannot fail).
  public func fileExists(_ path: String) -> Bool {
    machine.withLock { machine in
      if case .success = machine.disk.lookup(path) { return true }
      return false
    }
  }

  /// Makes the directory's names as they are now durable.
  public func syncDirectory(_ path: String) throws(SystemCallError) {
    try operate { machine throws(SystemCallError) in
      let node: Int
      switch machine.disk.lookup(path) {
      case .success(let found): node = found
      case .failure(let error):
        // Counted like the real call, whose open fails.
        if let injected = try machine.begin(.syncDirectory, path) { throw injected }
        throw SystemCallError(syscall: "open", errno: error.code, path: path)
      }
      let pending = machine.disk.directories[node]?.pending.count ?? 0
      if let error = try machine.begin(.syncDirectory, path, "\(pending) name changes") {
        if machine.disk.directories[node] != nil {
          machine.disk.failSyncDirectory(node, persisted: machine.random.int(in: 0...pending))
        }
        throw error
      }
      guard machine.disk.directories[node] != nil else {
        throw SystemCallError(syscall: "open", errno: ENOTDIR, path: path)
      }
      machine.disk.syncDirectory(node)
    }
  }

  /// Opens or creates `path/LOCK` and locks it for this instance; a second lock of it fails with
  /// `EWOULDBLOCK` until the first is released.
  public func lockDirectory(_ path: String) throws(SystemCallError) -> FileDescriptor {
    let lockPath = path.hasSuffix("/") ? path + "LOCK" : path + "/LOCK"
    return try operate { machine throws(SystemCallError) -> FileDescriptor in
      if let error = try machine.begin(.lockDirectory, lockPath) { throw error }
      let fd = try machine.open(lockPath, options: [.readWrite, .create], syscall: "open")
      let node = machine.descriptors[fd.rawValue]!.node
      if machine.locks[node] != nil {
        machine.descriptors[fd.rawValue] = nil
        throw SystemCallError(syscall: "flock", errno: EWOULDBLOCK, path: lockPath)
      }
      machine.locks[node] = fd.rawValue
      return fd
    }
  }

  /// Releases the lock and closes its descriptor.
  public func unlock(_ fd: FileDescriptor) {
    close(fd)
  }
}

extension SimulatedFileSystem.Machine {
  /// `open` without counting (the caller counted): looks up or creates the file and hands out
  /// a descriptor.
  mutating func open(_ path: String, options: OpenOptions, syscall: String)
    throws(SystemCallError) -> FileDescriptor
  {
    func failure(_ code: Int32) -> SystemCallError {
      SystemCallError(syscall: syscall, errno: code, path: path)
    }
    let node: Int
    switch disk.lookup(path) {
    case .success(let existing):
      if options.contains(.create) && options.contains(.exclusive) { throw failure(EEXIST) }
      if disk.directories[existing] != nil { throw failure(EISDIR) }
      node = existing
    case .failure(let error) where error.code == ENOENT && options.contains(.create):
      let parent = try disk.parent(of: path).get(syscall, path)
      node = disk.newFile()
      disk.link(parent.name, to: node, in: parent.directory)
    case .failure(let error):
      throw failure(error.code)
    }
    let writable = options.contains(.readWrite)
    if options.contains(.truncate) && writable && !disk.files[node]!.data.isEmpty {
      disk.change(node, .truncate(length: 0))
    }
    let fd = nextDescriptor
    nextDescriptor += 1
    descriptors[fd] = SimulatedFileSystem.Descriptor(node: node, path: path, writable: writable)
    return FileDescriptor(rawValue: fd)
  }
}

extension Result where Failure == Errno {
  /// The value, or the failure as the `SystemCallError` a real `syscall` on `path` would throw.
  func get(_ syscall: String, _ path: String) throws(SystemCallError) -> Success {
    switch self {
    case .success(let value): return value
    case .failure(let error): throw SystemCallError(syscall: syscall, errno: error.code, path: path)
    }
  }
}

/// The calling thread's name as the kernel knows it (`/proc/thread-self/comm`; Foundation's
/// `Thread.name` does not reach the kernel on Linux), or `nil` if it cannot be read. Called only
/// when a fault fires or the power goes out.
func currentThreadName() -> String? {
  let fd = Glibc.open("/proc/thread-self/comm", O_RDONLY)
  guard fd >= 0 else { return nil }
  defer { _ = Glibc.close(fd) }
  var buffer = [UInt8](repeating: 0, count: 32)
  let count = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
  guard count > 0 else { return nil }
  return String(decoding: buffer.prefix(count).filter { $0 != 10 }, as: UTF8.self)
}
