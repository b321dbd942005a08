// The appending side of the log.
//
// The writer thread calls `append` for every record of a batch (each frame is encoded straight
// into one reusable buffer), then `flush`, which hands the whole batch to the kernel with one
// `pwrite` at the end of the current segment. It does not sync: the engine's syncer thread syncs
// the returned segment while the writer goes on filling the next batch (see GroupCommit.swift).
//
// Rolling: after a flush that leaves the segment at or past `segmentBytesMax`, the writer
// `fdatasync`s that segment before it creates the next one. That ordering is what lets recovery
// call any bad frame in an older segment corruption: only the last segment can ever hold bytes
// that were written and never synced.

import Glibc

/// Size limits of a ``LogWriter``.
public struct LogWriterOptions: Sendable {
  /// A segment is closed and a new one started once a flush leaves it at or past this many bytes
  /// (so a segment may exceed it by at most one batch).
  public var segmentBytesMax: Int = 64 << 20
  /// The flush threshold of one batch: the writer reserves this much buffer up front and reports
  /// ``LogWriter/isBatchFull`` once this many bytes are buffered. A single record still goes in
  /// when the batch is nearly full, so a batch can exceed it by at most one frame.
  public var batchBytesMax: Int = 4 << 20

  /// Options with the given limits (by default 64 MiB segments and 4 MiB batches).
  public init(segmentBytesMax: Int = 64 << 20, batchBytesMax: Int = 4 << 20) {
    self.segmentBytesMax = segmentBytesMax
    self.batchBytesMax = batchBytesMax
  }
}

/// What one ``LogWriter/flush()`` handed to the kernel, and what must be synced to make it
/// durable.
public struct FlushedBatch: Sendable {
  /// The sequence number of the batch's last record.
  public let lastSequence: UInt64
  /// The segment holding the batch's frames: `segment.syncData()` makes every record through
  /// ``lastSequence`` durable.
  public let segment: SegmentHandle

  /// Describes a flushed batch.
  public init(lastSequence: UInt64, segment: SegmentHandle) {
    self.lastSequence = lastSequence
    self.segment = segment
  }
}

/// Appends framed records to the log's segment files: encodes frames into a batch buffer, writes
/// each batch with one `pwrite`, and rolls to a new segment when the current one is full.
///
/// Owned by one thread (the engine's writer thread) and not thread-safe. The ``SegmentHandle``s
/// it returns may be synced from another thread.
public final class LogWriter {
  let fileSystem: any FileSystem
  let directory: String
  /// The limits this writer was created with.
  public let options: LogWriterOptions

  /// The sequence number the next appended record gets.
  public private(set) var nextSequence: UInt64
  /// The last sequence known to be durable, as the engine last reported it. Every frame records
  /// how far behind it was written (its sync lag), so that recovery can tell a record lost with
  /// an unsynced batch from a record damaged after it was synced (see Frame.swift).
  public var durableSequence: UInt64 = 0
  /// The segment the next flush writes to.
  public private(set) var currentSegment: SegmentHandle
  /// How many segment files this writer created, the first one included.
  public private(set) var segmentsCreated: Int = 0

  /// Encoded frames not yet flushed.
  var batch: ByteWriter
  /// The current segment's length: where the next `pwrite` goes.
  var segmentBytes: Int64
  /// The checksum state after the current segment's salt.
  var seed: CRC32C
  /// The first error a flush met. Once set, every later flush throws it again (fail-stop).
  var failure: SystemCallError?
  /// The log's other segment files, oldest first (those found at start, then those rolled away
  /// from), with their lengths.
  var olderSegments: [(firstSequence: UInt64, path: String, bytes: Int64)] = []

  /// Starts a new segment whose first record will be `nextSequence`, and a writer appending to it.
  ///
  /// The engine calls this after recovery cut any torn tail, with the sequence after the last
  /// recovered record (``RecoveryReport/nextSequence``). If a segment file of that name already
  /// exists it can hold no frame (recovery would have reported them, and `nextSequence` would be
  /// past them), so it is reused; if it holds more than a header, or if a segment starting after
  /// `nextSequence` exists, this throws `EEXIST` (naming that file) rather than write a log that
  /// the next recovery would reject.
  ///
  /// The existing segments are listed (and their lengths read) once, for ``segmentCount`` and
  /// ``totalBytes``.
  ///
  /// Durability point: the new segment's header and its directory entry are durable when this
  /// returns (`fdatasync` of the file, `fsync` of the directory).
  public init(
    fileSystem: any FileSystem, directory: String, nextSequence: UInt64,
    options: LogWriterOptions = LogWriterOptions()
  ) throws(SystemCallError) {
    precondition(nextSequence != 0, "log sequences start at 1")
    precondition(
      options.segmentBytesMax > segmentHeaderBytes,
      "segmentBytesMax \(options.segmentBytesMax) leaves no room after the segment header")
    precondition(options.batchBytesMax > 0, "batchBytesMax must be positive")
    self.fileSystem = fileSystem
    self.directory = directory
    self.options = options
    self.nextSequence = nextSequence
    self.batch = ByteWriter(capacity: options.batchBytesMax)
    self.olderSegments = try LogWriter.existingSegments(
      fileSystem: fileSystem, directory: directory, before: nextSequence)
    let segment = try LogWriter.createSegment(
      fileSystem: fileSystem, directory: directory, firstSequence: nextSequence)
    self.currentSegment = segment
    self.segmentBytes = Int64(segmentHeaderBytes)
    self.seed = Frame.checksumSeed(salt: segment.salt)
    self.segmentsCreated = 1
  }

  /// Bytes encoded but not yet flushed.
  public var bufferedBytes: Int { batch.count }

  /// The number of segment files of the log, the current one included.
  public var segmentCount: Int { olderSegments.count + 1 }

  /// Bytes of every segment file of the log, as flushed (buffered bytes not included).
  public var totalBytes: Int64 {
    olderSegments.reduce(segmentBytes) { $0 + $1.bytes }
  }

  /// Whether the buffered bytes reached ``LogWriterOptions/batchBytesMax``: time to flush.
  public var isBatchFull: Bool { batch.count >= options.batchBytesMax }

  /// Encodes one record into the batch buffer and returns its sequence number. `encode` appends
  /// the payload to the writer it is given (the batch buffer itself).
  ///
  /// Traps if the payload exceeds ``recordBytesMax`` or `type` is 0 (programmer errors: the
  /// engine chunks large records).
  ///
  /// Durability point: none. The record is only in memory until ``flush()`` writes it and the
  /// returned segment is synced.
  @discardableResult
  public func append(type: UInt8, _ encode: (inout ByteWriter) -> Void) -> UInt64 {
    let sequence = nextSequence
    precondition(sequence != UInt64.max, "log sequence numbers exhausted")
    Frame.append(
      to: &batch, sequence: sequence, type: type, seed: seed,
      durableSequence: min(durableSequence, sequence - 1), payload: encode)
    nextSequence = sequence + 1
    return sequence
  }

  /// Writes the buffered frames with one `pwrite` at the end of the current segment and returns
  /// what must be synced to make them durable, or `nil` if nothing was buffered.
  ///
  /// If the segment is now at or past ``LogWriterOptions/segmentBytesMax``, rolls: `fdatasync`s
  /// the full segment (so a torn tail can only ever be in the last segment), then creates the
  /// next one (header, `fdatasync`, directory `fsync`). The returned batch still names the
  /// segment that holds its frames.
  ///
  /// After a failure the writer is stopped: this and every later flush throw the first error,
  /// and nothing is retried (fail-stop).
  ///
  /// Durability point: none for the frames of an ordinary flush (they are durable once
  /// `FlushedBatch.segment.syncData()` returns); after a roll they are already durable.
  public func flush() throws(SystemCallError) -> FlushedBatch? {
    if let failure { throw failure }
    guard batch.count > 0 else { return nil }
    let segment = currentSegment
    do {
      try writeBatch(to: segment)
    } catch {
      failure = error
      throw error
    }
    segmentBytes += Int64(batch.count)
    batch.removeAll(keepingCapacity: true)
    if batch.bytes.capacity > 2 * options.batchBytesMax {
      // One oversized batch must not pin its buffer for the life of the store.
      batch = ByteWriter(capacity: options.batchBytesMax)
    }
    let flushed = FlushedBatch(lastSequence: nextSequence - 1, segment: segment)
    if segmentBytes >= Int64(options.segmentBytesMax) {
      do {
        try roll()
      } catch {
        failure = error
        throw error
      }
    }
    return flushed
  }

  /// Ends the current segment now, if it holds any frame, and starts the next one, so that every
  /// record appended so far lies in sealed segments (for a snapshot, which reads only those). The
  /// batch must have been flushed. Costs what a roll at `segmentBytesMax` costs: one `fdatasync`
  /// of the segment and the creation of the next.
  ///
  /// After a failure the writer is stopped, as after a failed flush (fail-stop).
  ///
  /// Durability point: every record appended so far is durable when this returns.
  public func rollSegment() throws(SystemCallError) {
    if let failure { throw failure }
    precondition(batch.count == 0, "rollSegment with unflushed frames")
    guard segmentBytes > Int64(segmentHeaderBytes) else { return }
    do {
      try roll()
    } catch {
      failure = error
      throw error
    }
  }

  /// The single `pwrite` of a flush.
  private func writeBatch(to segment: SegmentHandle) throws(SystemCallError) {
    var failure: SystemCallError?
    batch.bytes.withUnsafeBytes { bytes in
      do throws(SystemCallError) {
        try fileSystem.write(segment.fd, bytes, at: segmentBytes)
      } catch {
        failure = error.withPath(segment.path)
      }
    }
    if let failure { throw failure }
  }

  /// Syncs the full segment, then starts the next.
  private func roll() throws(SystemCallError) {
    // Durability point: every frame of the full segment is durable once this sync returns,
    // before any byte reaches the next segment.
    try currentSegment.syncData()
    let segment = try LogWriter.createSegment(
      fileSystem: fileSystem, directory: directory, firstSequence: nextSequence)
    olderSegments.append((currentSegment.firstSequence, currentSegment.path, segmentBytes))
    currentSegment = segment
    segmentBytes = Int64(segmentHeaderBytes)
    seed = Frame.checksumSeed(salt: segment.salt)
    segmentsCreated += 1
  }

  /// Deletes every segment whose records all have sequences at or below `sequence` (a durable
  /// snapshot covers them), oldest first, never the current segment; then syncs the directory.
  /// Returns how many files were deleted.
  ///
  /// Oldest first, so that a crash part-way leaves a log without a gap. The snapshot that covers
  /// `sequence` must be durable (file synced, renamed, directory synced) before this is called.
  ///
  /// Durability point: the deletions are durable once the directory sync returns.
  @discardableResult
  public func removeSegments(coveredThrough sequence: UInt64) throws(SystemCallError) -> Int {
    let paths = detachSegments(coveredThrough: sequence)
    for path in paths { try fileSystem.removeFile(path) }
    if !paths.isEmpty { try fileSystem.syncDirectory(directory) }
    return paths.count
  }

  /// Takes every segment whose records all have sequences at or below `sequence` off the
  /// writer's list, oldest first, never the current segment, and returns their paths, oldest
  /// first, without deleting them: for a caller that deletes them on another thread, because
  /// unlinking a large file can take tens of milliseconds that the appending thread must not
  /// spend. The caller deletes them in the order given, then syncs the directory (as
  /// ``removeSegments(coveredThrough:)`` does), and only once the snapshot covering `sequence`
  /// is durable.
  ///
  /// Durability point: none; this changes no file.
  public func detachSegments(coveredThrough sequence: UInt64) -> [String] {
    var count = 0
    while count < olderSegments.count {
      let nextFirst =
        count + 1 < olderSegments.count
        ? olderSegments[count + 1].firstSequence : currentSegment.firstSequence
      // The segment's last record is the one before the next segment's first.
      guard nextFirst - 1 <= sequence else { break }
      count += 1
    }
    defer { olderSegments.removeFirst(count) }
    return olderSegments.prefix(count).map(\.path)
  }

  /// The segment files already in `directory`, oldest first, with their lengths. Throws `EEXIST`
  /// for a segment that starts after `nextSequence`: the writer would overlap it.
  static func existingSegments(
    fileSystem: any FileSystem, directory: String, before nextSequence: UInt64
  ) throws(SystemCallError) -> [(firstSequence: UInt64, path: String, bytes: Int64)] {
    var segments: [(firstSequence: UInt64, path: String, bytes: Int64)] = []
    for name in try fileSystem.contentsOfDirectory(directory) {
      guard let firstSequence = SegmentFile.firstSequence(fromName: name),
        firstSequence != nextSequence
      else { continue }
      let path = joinPath(directory, name)
      guard firstSequence < nextSequence else {
        throw SystemCallError(syscall: "open", errno: EEXIST, path: path)
      }
      let fd = try fileSystem.openFile(path, options: .readOnly)
      defer { fileSystem.close(fd) }
      do {
        segments.append((firstSequence, path, try fileSystem.size(of: fd)))
      } catch {
        throw error.withPath(path)
      }
    }
    segments.sort { $0.firstSequence < $1.firstSequence }
    return segments
  }

  /// Creates (or reuses, if it holds no frame) the segment file for `firstSequence`, writes its
  /// header with a fresh random salt, and makes header and name durable.
  static func createSegment(
    fileSystem: any FileSystem, directory: String, firstSequence: UInt64
  ) throws(SystemCallError) -> SegmentHandle {
    let path = joinPath(directory, SegmentFile.name(firstSequence: firstSequence))
    let fd = try fileSystem.openFile(path, options: [.readWrite, .create])
    var created = false
    defer { if !created { fileSystem.close(fd) } }
    do throws(SystemCallError) {
      let existingBytes = try fileSystem.size(of: fd)
      if existingBytes > Int64(segmentHeaderBytes) {
        throw SystemCallError(syscall: "open", errno: EEXIST, path: path)
      }
      if existingBytes > 0 { try fileSystem.truncate(fd, to: 0) }
      let header = SegmentHeader(
        salt: UInt64.random(in: .min ... .max), firstSequence: firstSequence)
      var failure: SystemCallError?
      header.encoded().withUnsafeBytes { bytes in
        do throws(SystemCallError) {
          try fileSystem.write(fd, bytes, at: 0)
        } catch {
          failure = error
        }
      }
      if let failure { throw failure }
      // Durability point: the header is durable after this fdatasync, and the file's name
      // after the directory fsync; only then may frames follow.
      try fileSystem.syncData(fd)
      try fileSystem.syncDirectory(directory)
      created = true
      return SegmentHandle(
        fileSystem: fileSystem, fd: fd, path: path, firstSequence: firstSequence,
        salt: header.salt)
    } catch {
      throw error.withPath(path)
    }
  }
}
