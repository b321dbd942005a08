// Recovery: reading the log back after a clean shutdown or a crash.
//
// What can be on disk. The writer appends frames to the last segment only, and syncs a segment
// before it creates the next one (LogWriter.swift). So after a crash, bytes that were written
// but never synced (and may be missing, torn, zeroed or garbled) can only be at the end of the
// last segment. Every other byte of the log was synced, and a bad byte there is not a crash: it
// is corruption (a bad disk, a bug, a stray write), and silently dropping what follows it could
// drop acknowledged claims.
//
// The scan. Segments are the files named `log-<20 digits>.seg`, read in firstSequence order
// (other files are left to the engine). For each segment:
// 1. The 32-byte header must verify and name the same first sequence as the file name. The first
//    segment must start at or before `afterSequence + 1` (the records before it are in the
//    snapshot); each later one exactly one after the previous segment's last record, else
//    "sequence gap" (or overlap). A gap entirely inside the range the snapshot covers
//    (`firstSequence <= afterSequence + 1`) is tolerated: nothing needed is missing.
// 2. Frames follow back to back (Frame.swift): each must be complete, well formed, verify under
//    the segment's salt, and carry the next sequence number. Records at or below
//    `afterSequence` are verified but not visited; the others are handed to `visit` in order,
//    with their payload borrowed from the scan buffer.
// 3. At the first invalid frame:
//    - in a segment that is not the last: corruption, naming the file and the frame's offset;
//    - in the last segment: scan byte by byte for any later frame that verifies (cheap checks on
//      the header fields first, then the checksum; the salt makes a chance match a 2^-32 event
//      and stale frames from other files impossible) with a sequence above the last good one.
//      If one exists, a good record follows a bad one: corruption. If none, the bad bytes are a
//      torn tail: the file is truncated at the bad offset and `fdatasync`ed, so the next
//      recovery finds it clean, and the cut is reported.
// 4. A last segment that holds no more than a header, and whose header is short or does not
//    verify, is what a crash while creating it leaves: it never held a record, so it is removed.
//    A last segment with a valid header and no frame is kept (the writer reuses it).
// With `readOnly`, nothing is cut or removed: the report says what a writable recovery would do
// (for `inspect`, `verify` and `dump`, which must not change what they look at).
// With `salvage`, corruption does not throw: the bad segment is truncated at the bad offset (or
// removed if the header itself is bad), every later segment is deleted, and the report says
// what was dropped. Salvage is for an operator who prefers a consistent prefix to no store.
//
// Speed. Segments are read in large chunks (8 MiB) into one buffer reused for the whole scan,
// frames are decoded in place through `UnsafeRawBufferPointer`, and nothing is allocated per
// record; the checksum state after the salt is computed once per segment.

/// How ``recoverLog(fileSystem:directory:options:progress:visit:)`` treats the log.
public struct RecoveryOptions: Sendable {
  /// Truncate at the first corruption and drop everything after it, instead of throwing.
  public var salvage = false
  /// Records with a sequence at or below this are verified but not visited (a snapshot covers
  /// them).
  public var afterSequence: UInt64 = 0
  /// Change no file: report a torn tail or a torn last segment as a writable recovery would cut
  /// or remove it, but leave it on disk (for `inspect`, `verify` and `dump`). Cannot be combined
  /// with ``salvage``.
  public var readOnly = false
  /// Records after this sequence are not read: segments that start after it are not even opened,
  /// and the scan stops after record `throughSequence`. For reading the sealed part of a log that
  /// is still being appended to (a snapshot folds the segments the writer has rolled away from);
  /// only with ``readOnly``.
  public var throughSequence: UInt64 = .max
  /// Do not read segments whose records all lie at or below ``afterSequence`` (known without
  /// reading them: the next segment starts at or before `afterSequence + 1`); they are listed in
  /// the report but neither verified nor counted. The snapshot covers them: they are kept only
  /// for an older snapshot to fall back on, and verifying them at every open would cost time and
  /// could refuse, or salvage away, a log whose every needed record is intact.
  public var skipCoveredSegments = false

  /// Options for a strict recovery by default.
  public init(
    salvage: Bool = false, afterSequence: UInt64 = 0, readOnly: Bool = false,
    throughSequence: UInt64 = .max, skipCoveredSegments: Bool = false
  ) {
    self.salvage = salvage
    self.afterSequence = afterSequence
    self.readOnly = readOnly
    self.throughSequence = throughSequence
    self.skipCoveredSegments = skipCoveredSegments
  }
}

/// One record handed to the recovery visitor. The payload is borrowed: it is valid only during
/// the visit call.
public struct LogRecordView {
  /// The record's sequence number.
  public let sequence: UInt64
  /// The record's type (never 0).
  public let type: UInt8
  /// The record's payload, valid only during the visit.
  public let payload: UnsafeRawBufferPointer
  /// The segment file holding the record.
  public let path: String
  /// The offset of the record's frame in that file.
  public let offset: Int64

  /// Describes a record (for tests and tools that feed a visitor themselves).
  public init(
    sequence: UInt64, type: UInt8, payload: UnsafeRawBufferPointer, path: String, offset: Int64
  ) {
    self.sequence = sequence
    self.type = type
    self.payload = payload
    self.path = path
    self.offset = offset
  }
}

/// A torn tail that recovery cut off the last segment.
public struct TailCut: Sendable, Equatable {
  /// The last segment's path.
  public var path: String
  /// Where the file now ends (the offset of the first invalid frame), or 0 if it was removed.
  /// After a read-only recovery: where it would end.
  public var offset: Int64
  /// How many bytes were (or, read-only, would be) cut.
  public var bytesCut: Int64
  /// Whether the whole file was (or, read-only, would be) removed: its header was torn, a crash
  /// while creating it.
  public var segmentRemoved: Bool

  /// Describes a cut.
  public init(path: String, offset: Int64, bytesCut: Int64, segmentRemoved: Bool = false) {
    self.path = path
    self.offset = offset
    self.bytesCut = bytesCut
    self.segmentRemoved = segmentRemoved
  }
}

/// What a salvaging recovery dropped.
public struct Salvage: Sendable, Equatable {
  /// The segment where the corruption was found.
  public var path: String
  /// The offset of the corruption in that segment; the segment was truncated there (removed if
  /// 0).
  public var offset: Int64
  /// Bytes dropped in total (the rest of that segment and every later segment).
  public var bytesDropped: Int64
  /// Segment files removed (every later segment, and this one if its header was bad).
  public var segmentsDropped: Int
  /// What was wrong at the offset.
  public var reason: String

  /// Describes a salvage.
  public init(
    path: String, offset: Int64, bytesDropped: Int64, segmentsDropped: Int, reason: String
  ) {
    self.path = path
    self.offset = offset
    self.bytesDropped = bytesDropped
    self.segmentsDropped = segmentsDropped
    self.reason = reason
  }
}

/// The outcome of a successful recovery.
public struct RecoveryReport: Sendable {
  /// The segment files that remain, in log order (paths).
  public var segments: [String] = []
  /// Records handed to the visitor (those above `afterSequence`).
  public var recordsVisited = 0
  /// Records verified, visited or not.
  public var recordsTotal = 0
  /// The last sequence the log and the snapshot account for: the last valid record's, or, if
  /// the log ends with an empty segment, the one before that segment's first sequence; never
  /// less than `afterSequence`; 0 for an empty log without a snapshot. The writer goes on at
  /// `lastSequence + 1`.
  public var lastSequence: UInt64 = 0
  /// `lastSequence + 1`: the sequence the next record must carry, hence the first sequence of
  /// the segment the writer starts.
  public var nextSequence: UInt64 = 1
  /// Bytes of all remaining segments, after any cut.
  public var logBytes: Int64 = 0
  /// The torn tail cut off the last segment, if there was one.
  public var tornTail: TailCut?
  /// What salvage dropped, if salvage was asked for and needed.
  public var salvaged: Salvage?

  /// An empty report.
  public init() {}
}

/// Why the log could not be recovered.
public enum LogError: Error, Sendable, CustomStringConvertible {
  /// A bad frame or header before the tail, a sequence gap, or a bad header in a segment that is
  /// not the last. Opening must fail (unless salvage is asked for).
  case corruption(path: String, offset: Int64, reason: String)
  /// A system call failed while reading or repairing the log.
  case io(SystemCallError)

  /// What went wrong and where.
  public var description: String {
    switch self {
    case .corruption(let path, let offset, let reason):
      return "log corruption in \(path) at offset \(offset): \(reason)"
    case .io(let error):
      return "log I/O error: \(error)"
    }
  }
}

/// Reads the log in `directory`, verifies every record, hands those after
/// `options.afterSequence` to `visit` in order, cuts a torn tail off the last segment, and
/// reports what it found.
///
/// - Parameters:
///   - progress: called after every chunk read with the bytes scanned so far and the total.
///   - visit: called for each record in sequence order; its payload is valid only during the
///     call. An error it throws stops recovery and is rethrown unchanged.
/// - Throws: ``LogError/corruption(path:offset:reason:)`` for a bad record before the tail (unless
///   salvaging), ``LogError/io(_:)`` for a failed system call, or whatever `visit` throws.
public func recoverLog(
  fileSystem: any FileSystem, directory: String, options: RecoveryOptions,
  progress: ((_ bytesDone: Int64, _ bytesTotal: Int64) -> Void)? = nil,
  visit: (LogRecordView) throws -> Void
) throws -> RecoveryReport {
  var scan = LogScan(
    fileSystem: fileSystem, directory: directory, options: options, progress: progress)
  defer { scan.deallocate() }
  return try scan.run(visit: visit)
}

/// The state of one recovery scan: the segment list, the chunk buffer and the report.
struct LogScan {
  /// A segment file found in the directory.
  struct SegmentEntry {
    var firstSequence: UInt64
    var path: String
    var bytes: Int64
  }

  /// What scanning one segment ended with.
  enum SegmentOutcome {
    /// Fully verified (possibly after cutting a torn tail); `lastSequence` is its last record,
    /// or its first sequence minus one if it holds none.
    case complete(lastSequence: UInt64)
    /// Removed (a torn header in the last segment).
    case removed
    /// Salvage truncated the log here; nothing after this point remains.
    case salvaged(lastSequence: UInt64)
  }

  /// Bytes read per chunk. At least one largest frame, so any frame fits in the buffer whole.
  static let chunkBytes = 8 << 20

  let fileSystem: any FileSystem
  let directory: String
  let options: RecoveryOptions
  let progress: ((Int64, Int64) -> Void)?

  /// The chunk buffer, reused for every segment.
  let buffer: UnsafeMutableRawBufferPointer
  /// The segment being read.
  var fd = FileDescriptor(rawValue: -1)
  var fileBytes: Int64 = 0
  /// The file offset of `buffer[0]`, and how many bytes of the buffer hold file data.
  var windowStart: Int64 = 0
  var windowCount = 0

  var report = RecoveryReport()
  var bytesTotal: Int64 = 0
  /// Bytes of the segments already scanned (for progress).
  var bytesBefore: Int64 = 0

  init(
    fileSystem: any FileSystem, directory: String, options: RecoveryOptions,
    progress: ((Int64, Int64) -> Void)?
  ) {
    precondition(
      LogScan.chunkBytes >= frameHeaderBytes + recordBytesMax,
      "the recovery chunk must hold the largest frame")
    precondition(!(options.salvage && options.readOnly), "salvage cannot be read-only")
    precondition(
      options.readOnly || options.throughSequence == .max,
      "a recovery that stops early must be read-only")
    self.fileSystem = fileSystem
    self.directory = directory
    self.options = options
    self.progress = progress
    self.buffer = UnsafeMutableRawBufferPointer.allocate(
      byteCount: LogScan.chunkBytes, alignment: 16)
  }

  func deallocate() {
    buffer.deallocate()
  }

  /// The resident part of the window.
  var window: UnsafeRawBufferPointer {
    UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(buffer)[0..<windowCount])
  }

  mutating func run(visit: (LogRecordView) throws -> Void) throws -> RecoveryReport {
    let segments = try listSegments()
    bytesTotal = segments.reduce(0) { $0 + $1.bytes }
    progress?(0, bytesTotal)
    // The last sequence the log accounts for so far (nil before the first segment).
    var logEnd: UInt64?
    for index in segments.indices {
      if options.skipCoveredSegments, index + 1 < segments.count,
        segments[index + 1].firstSequence - 1 <= options.afterSequence
      {
        // Covered segments form a prefix of the log, so the first segment read is checked
        // against afterSequence as the log's first (no record after the snapshot is missing).
        report.segments.append(segments[index].path)
        report.logBytes += segments[index].bytes
        bytesBefore += segments[index].bytes
        continue
      }
      let outcome = try scanSegment(segments, index, previousEnd: logEnd, visit: visit)
      bytesBefore += segments[index].bytes
      switch outcome {
      case .complete(let lastSequence):
        logEnd = lastSequence
      case .removed:
        break
      case .salvaged(let lastSequence):
        logEnd = lastSequence
      }
      if case .salvaged = outcome { break }
    }
    progress?(bytesTotal, bytesTotal)
    report.lastSequence = max(logEnd ?? 0, options.afterSequence)
    report.nextSequence = report.lastSequence &+ 1
    return report
  }

  /// The segment files of the directory in log order, with their sizes.
  func listSegments() throws(LogError) -> [SegmentEntry] {
    var segments: [SegmentEntry] = []
    do throws(SystemCallError) {
      for name in try fileSystem.contentsOfDirectory(directory) {
        guard let firstSequence = SegmentFile.firstSequence(fromName: name),
          firstSequence <= options.throughSequence
        else { continue }
        let path = joinPath(directory, name)
        let fd = try fileSystem.openFile(path, options: .readOnly)
        defer { fileSystem.close(fd) }
        let bytes: Int64
        do { bytes = try fileSystem.size(of: fd) } catch { throw error.withPath(path) }
        segments.append(SegmentEntry(firstSequence: firstSequence, path: path, bytes: bytes))
      }
    } catch {
      throw .io(error)
    }
    segments.sort { $0.firstSequence < $1.firstSequence }
    return segments
  }

  /// Verifies one segment, visits its records, and applies the torn-tail and corruption rules.
  mutating func scanSegment(
    _ segments: [SegmentEntry], _ index: Int, previousEnd: UInt64?,
    visit: (LogRecordView) throws -> Void
  ) throws -> SegmentOutcome {
    let entry = segments[index]
    let isLast = index == segments.count - 1
    let segmentFD = try io(entry.path) { () throws(SystemCallError) in
      try fileSystem.openFile(entry.path, options: .readOnly)
    }
    defer { fileSystem.close(segmentFD) }
    fd = segmentFD
    fileBytes = try io(entry.path) { () throws(SystemCallError) in
      try fileSystem.size(of: segmentFD)
    }
    windowStart = 0
    windowCount = 0

    // 1. The header.
    let headerBytes = Int(min(fileBytes, Int64(segmentHeaderBytes)))
    _ = try load(0, headerBytes, path: entry.path)
    let header: SegmentHeader
    do {
      header = try SegmentHeader(
        decoding: UnsafeRawBufferPointer(rebasing: window.prefix(headerBytes)))
    } catch {
      if isLast && fileBytes <= Int64(segmentHeaderBytes) && error.isTorn {
        try removeTornSegment(entry)
        return .removed
      }
      return try corruption(
        segments, index, offset: 0, reason: error.description, lastSequence: previousEnd ?? 0)
    }
    let segmentStart = header.firstSequence - 1
    if header.firstSequence != entry.firstSequence {
      return try corruption(
        segments, index, offset: 0,
        reason: "header names first sequence \(header.firstSequence), the file name "
          + "\(entry.firstSequence)", lastSequence: previousEnd ?? 0)
    }
    if let previousEnd {
      if header.firstSequence <= previousEnd {
        return try corruption(
          segments, index, offset: 0,
          reason: "sequence overlap: segment starts at \(header.firstSequence) but the previous "
            + "segment ends at \(previousEnd)", lastSequence: previousEnd)
      }
      if header.firstSequence != previousEnd + 1 && segmentStart > options.afterSequence {
        return try corruption(
          segments, index, offset: 0,
          reason: "sequence gap: segment starts at \(header.firstSequence) but the previous "
            + "segment ends at \(previousEnd)", lastSequence: previousEnd)
      }
    } else if segmentStart > options.afterSequence {
      return try corruption(
        segments, index, offset: 0,
        reason: "sequence gap: the log starts at \(header.firstSequence) but only records "
          + "through \(options.afterSequence) are covered by a snapshot", lastSequence: 0)
    }

    // 2. The frames.
    let seed = Frame.checksumSeed(salt: header.salt)
    var expected = header.firstSequence
    var position = Int64(segmentHeaderBytes)
    var defect: String?
    while position < fileBytes && expected <= options.throughSequence {
      let decoded = try decodeFrame(
        at: position, seed: seed, expectedSequence: expected, path: entry.path)
      switch decoded {
      case .valid(let frame):
        if frame.sequence > options.afterSequence {
          let payloadStart = Int(position - windowStart) + frameHeaderBytes
          try visit(
            LogRecordView(
              sequence: frame.sequence, type: frame.type,
              payload: UnsafeRawBufferPointer(
                rebasing: window[payloadStart..<payloadStart + frame.payloadLength]),
              path: entry.path, offset: position))
          report.recordsVisited += 1
        }
        report.recordsTotal += 1
        expected = frame.sequence &+ 1
        position += Int64(frame.frameBytes)
      case .incomplete(let needed):
        defect =
          needed == frameHeaderBytes
          ? "frame header cut short by the end of the file"
          : "frame of \(needed) bytes runs past the end of the file"
      case .invalid(let reason):
        defect = reason.description
      }
      if defect != nil { break }
    }
    let lastSequence = expected &- 1

    // 3. The first invalid frame, if any.
    if let defect {
      guard isLast else {
        return try corruption(
          segments, index, offset: position, reason: defect + " (not the last segment)",
          lastSequence: lastSequence)
      }
      switch try laterValidFrame(
        from: position, above: lastSequence, seed: seed, path: entry.path, writtenAfter: nil)
      {
      case .found(let offset, _)
      where try isLostUnsyncedWrite(
        from: position, to: offset, lastGood: lastSequence, seed: seed, path: entry.path):
        try cutTornTail(entry, at: position)
      case .found(let offset, let sequence):
        return try corruption(
          segments, index, offset: position,
          reason: defect + "; a valid frame (sequence \(sequence)) follows at offset \(offset)",
          lastSequence: lastSequence)
      case .tooManyCandidates(let offset):
        return try corruption(
          segments, index, offset: position,
          reason: defect + "; the bytes after it hold frame-like headers at every turn (up to "
            + "offset \(offset)), which no crash leaves behind", lastSequence: lastSequence)
      case .tornTail:
        try cutTornTail(entry, at: position)
      }
    }
    report.segments.append(entry.path)
    report.logBytes += position
    return .complete(lastSequence: lastSequence)
  }

  /// Makes file bytes `offset ..< offset + length` of the current segment resident in the
  /// buffer, reading a chunk if needed. Returns `false` if they extend past the end of the file.
  mutating func load(_ offset: Int64, _ length: Int, path: String) throws(LogError) -> Bool {
    precondition(length <= buffer.count, "a frame larger than the recovery chunk")
    guard offset + Int64(length) <= fileBytes else { return false }
    let windowEnd = windowStart + Int64(windowCount)
    if offset >= windowStart && offset + Int64(length) <= windowEnd { return true }
    if offset >= windowStart && offset < windowEnd {
      // Keep the resident bytes from `offset` on; move them to the front (regions may overlap:
      // copyMemory is a memmove).
      let keepFrom = Int(offset - windowStart)
      let keep = windowCount - keepFrom
      buffer.baseAddress!.copyMemory(from: buffer.baseAddress! + keepFrom, byteCount: keep)
      windowCount = keep
    } else {
      windowCount = 0
    }
    windowStart = offset
    let readFrom = windowStart + Int64(windowCount)
    let wanted = Int(min(Int64(buffer.count - windowCount), fileBytes - readFrom))
    let target = UnsafeMutableRawBufferPointer(
      rebasing: buffer[windowCount..<windowCount + wanted])
    let segmentFD = fd
    let count = try io(path) { () throws(SystemCallError) in
      try fileSystem.read(segmentFD, into: target, at: readFrom)
    }
    windowCount += count
    if count < wanted {
      // The file shrank while it was read: what is there is all there is.
      fileBytes = windowStart + Int64(windowCount)
    }
    progress?(bytesBefore + windowStart + Int64(windowCount), bytesTotal)
    return offset + Int64(length) <= windowStart + Int64(windowCount)
  }

  /// Decodes the frame at file offset `position`, reading more of the file while the frame runs
  /// past the resident bytes. At most three rounds: the header, then the whole frame.
  mutating func decodeFrame(
    at position: Int64, seed: CRC32C, expectedSequence: UInt64, path: String
  ) throws(LogError) -> Frame.Decoded {
    while true {
      let decoded = Frame.decode(
        window, at: Int(position - windowStart), seed: seed, expectedSequence: expectedSequence)
      guard case .incomplete(let needed) = decoded, try load(position, needed, path: path) else {
        return decoded
      }
    }
  }

  /// Whether the invalid bytes from `start` up to the valid frame at `end` are a write that a
  /// power loss dropped, not damage: they are all zeros (what a dropped append leaves when a
  /// later append survived), and no valid frame after them was written once sequence
  /// `lastGood + 1` was durable (its sync lag says so). A page cache may write back unsynced
  /// appends in any order, so such a hole in the unsynced tail is crash damage and is cut with
  /// it. Anything else (a flipped bit, garbage) followed by a valid frame stays corruption.
  mutating func isLostUnsyncedWrite(
    from start: Int64, to end: Int64, lastGood: UInt64, seed: CRC32C, path: String
  ) throws(LogError) -> Bool {
    var position = start
    while position < end {
      let length = Int(min(end - position, Int64(LogScan.chunkBytes / 2)))
      guard try load(position, length, path: path) else { return false }
      let bytes = UnsafeRawBufferPointer(
        rebasing: window[Int(position - windowStart)..<Int(position - windowStart) + length])
      if bytes.contains(where: { $0 != 0 }) { return false }
      position += Int64(length)
    }
    // Proof that the hole was synced: a later frame written once it was durable.
    let proof = try laterValidFrame(
      from: start, scanningFrom: end, above: lastGood, seed: seed, path: path,
      writtenAfter: lastGood)
    if case .tornTail = proof { return true }
    return false
  }

  /// What the search after the first invalid frame of the last segment found.
  enum LaterFrame {
    /// No frame that proves corruption: the bytes from the invalid frame on are a torn tail.
    case tornTail
    /// A frame that verifies and was written after the invalid frame was durable.
    case found(offset: Int64, sequence: UInt64)
    /// Candidate frames (headers that could be such a frame) overlap so much that checking
    /// them would cost more than ``laterFrameChecksumBytesMax(after:)``: not crash damage.
    case tooManyCandidates(at: Int64)
  }

  /// The checksum work the search after an invalid frame at `start` may do: each byte after it
  /// once, plus one largest frame.
  ///
  /// Why a bound: the search tries every offset, and a header at each offset could claim a
  /// megabyte of payload, so bytes crafted to look like headers everywhere (the fuzzer found
  /// them) made the search quadratic: hours for one 64 MiB segment. Genuine candidates never
  /// overlap (frames are written back to back), and a chance match in real data must also have
  /// its 64-bit sequence land in the narrow window the sequence bound below allows; so a crash
  /// does not reach this bound, and bytes that do are treated as the damage they are (refuse to
  /// open; salvage cuts there).
  func laterFrameChecksumBytesMax(after start: Int64) -> Int64 {
    fileBytes - start + Int64(frameHeaderBytes + recordBytesMax)
  }

  /// The first frame after the invalid one at `start` (searching from `scanningFrom`, by default
  /// `start`) that verifies under `seed` and has a sequence above `lastGood`, if any: the
  /// byte-by-byte search that tells corruption from a torn tail. With `writtenAfter`, only a
  /// frame written once that sequence was durable counts (its sync lag says so).
  ///
  /// Only candidates are checksummed: a well-formed header, wholly in the file, whose sequence
  /// lies above `lastGood` and at most one per 20 bytes past `start` beyond it (every frame the
  /// writer wrote between the invalid one and this one takes at least a header), and whose
  /// durable sequence (sequence − sync lag) is above `writtenAfter`. All of it is read from the
  /// header before any checksum is computed.
  mutating func laterValidFrame(
    from start: Int64, scanningFrom: Int64? = nil, above lastGood: UInt64, seed: CRC32C,
    path: String, writtenAfter durable: UInt64?
  ) throws(LogError) -> LaterFrame {
    var position = scanningFrom ?? start
    var checksumBytesLeft = laterFrameChecksumBytesMax(after: start)
    while position + Int64(frameHeaderBytes) <= fileBytes {
      if position + Int64(frameHeaderBytes) > windowStart + Int64(windowCount) {
        guard try load(position, frameHeaderBytes, path: path) else { break }
      }
      let fields = Frame.HeaderFields(window, at: Int(position - windowStart))
      let frameBytes = Int64(frameHeaderBytes) + Int64(fields.payloadLength)
      let sequenceMax = lastGood &+ 1 &+ UInt64(position - start) / UInt64(frameHeaderBytes)
      if fields.shapeDefect == nil, fields.sequence > lastGood, fields.sequence <= sequenceMax,
        durable.map({ fields.durableSequence > $0 }) ?? true, position + frameBytes <= fileBytes
      {
        checksumBytesLeft -= frameBytes
        if checksumBytesLeft < 0 { return .tooManyCandidates(at: position) }
        if try load(position, Int(frameBytes), path: path),
          case .valid(let frame) = Frame.decode(
            window, at: Int(position - windowStart), seed: seed, expectedSequence: nil)
        {
          return .found(offset: position, sequence: frame.sequence)
        }
      }
      position += 1
    }
    return .tornTail
  }

  /// Truncates the last segment at the first invalid frame and makes the cut durable.
  mutating func cutTornTail(_ entry: SegmentEntry, at offset: Int64) throws(LogError) {
    let bytesCut = fileBytes - offset
    report.tornTail = TailCut(path: entry.path, offset: offset, bytesCut: bytesCut)
    if options.readOnly { return }
    try io(entry.path) { () throws(SystemCallError) in
      let writable = try fileSystem.openFile(entry.path, options: .readWrite)
      defer { fileSystem.close(writable) }
      try fileSystem.truncate(writable, to: offset)
      // Durability point: the cut is durable once this returns, so a crash now cannot bring
      // the torn bytes back in front of frames the writer appends later.
      try fileSystem.syncData(writable)
    }
  }

  /// Removes a last segment whose header was torn while it was being created.
  mutating func removeTornSegment(_ entry: SegmentEntry) throws(LogError) {
    report.tornTail = TailCut(
      path: entry.path, offset: 0, bytesCut: fileBytes, segmentRemoved: true)
    if options.readOnly { return }
    try io(entry.path) { () throws(SystemCallError) in
      try fileSystem.removeFile(entry.path)
      // Durability point: the removal is durable once the directory is synced.
      try fileSystem.syncDirectory(directory)
    }
  }

  /// Throws corruption at `offset` of segment `index`, or, when salvaging, truncates the log
  /// there and reports what was dropped.
  mutating func corruption(
    _ segments: [SegmentEntry], _ index: Int, offset: Int64, reason: String,
    lastSequence: UInt64
  ) throws(LogError) -> SegmentOutcome {
    let entry = segments[index]
    guard options.salvage else {
      throw .corruption(path: entry.path, offset: offset, reason: reason)
    }
    var bytesDropped: Int64 = 0
    var segmentsDropped = 0
    try io(entry.path) { () throws(SystemCallError) in
      // Later segments first, so that a crash part-way leaves a log that is still a prefix.
      for later in segments[(index + 1)...].reversed() {
        try fileSystem.removeFile(later.path)
        bytesDropped += later.bytes
        segmentsDropped += 1
      }
      if offset == 0 {
        try fileSystem.removeFile(entry.path)
        bytesDropped += fileBytes
        segmentsDropped += 1
      } else {
        let writable = try fileSystem.openFile(entry.path, options: .readWrite)
        defer { fileSystem.close(writable) }
        try fileSystem.truncate(writable, to: offset)
        try fileSystem.syncData(writable)
        bytesDropped += fileBytes - offset
      }
      // Durability point: the salvage is durable once the directory is synced.
      try fileSystem.syncDirectory(directory)
    }
    if offset > 0 {
      report.segments.append(entry.path)
      report.logBytes += offset
    }
    report.salvaged = Salvage(
      path: entry.path, offset: offset, bytesDropped: bytesDropped,
      segmentsDropped: segmentsDropped, reason: reason)
    return .salvaged(lastSequence: lastSequence)
  }

  /// Runs file-system calls, wrapping their error as ``LogError/io(_:)`` with `path` filled in.
  func io<T>(_ path: String, _ body: () throws(SystemCallError) -> T) throws(LogError) -> T {
    do {
      return try body()
    } catch {
      throw .io(error.withPath(path))
    }
  }
}
