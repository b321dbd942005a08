// frame-decoder: arbitrary bytes as log segment files → the recovery scan.
//
// Each input becomes a directory of segment files (LogPlan.swift) on an in-memory file system.
// The target then checks:
// - `recoverLog` returns records, a clean tail cut, a salvage or a corruption error, never
//   anything else, and never traps, hangs or reads outside its buffers (AddressSanitizer);
// - it agrees exactly with ReferenceRecovery (records, tail cut, salvage, error location,
//   the files left behind);
// - a second recovery after a writable one finds a clean log with the same records (the cut is
//   durable and complete);
// - `Frame.decode` and `SegmentHeader(decoding:)`, called directly on exactly-sized heap copies
//   of the files, stay in bounds, and what they accept re-encodes to the same bytes.

import CouponLog

enum FrameDecoderFuzzer {
  static func run(_ data: [UInt8]) throws {
    var input = FuzzInput(data)
    let plan = LogPlan(&input)
    FuzzLog.line("frame-decoder " + plan.summary)
    try checkDirectDecoding(plan)
    let disk = FuzzDisk.make()
    try! disk.createDirectory(LogPlan.directory)
    for file in plan.files {
      disk.setContents(of: LogPlan.directory + "/" + file.name, to: file.bytes)
    }
    let before = disk.allFiles()
    let expected = ReferenceRecovery.run(
      files: Dictionary(before.map { (name(of: $0.path), $0.bytes) }) { _, last in last },
      directory: LogPlan.directory, mode: plan.mode, afterSequence: plan.afterSequence)
    let outcome = try recover(disk, mode: plan.mode, afterSequence: plan.afterSequence)
    try compare(outcome, expected, disk)
    if plan.mode == .readOnly {
      try fuzzCheck(
        disk.allFiles().elementsEqual(before) { $0.path == $1.path && $0.bytes == $1.bytes },
        "read-only recovery changed the directory")
    }
    if case .success = outcome.result, plan.mode != .readOnly {
      // The cut or salvage was made durable: the next recovery must find a clean log.
      let again = try recover(disk, mode: .strict, afterSequence: plan.afterSequence)
      guard case .success(let report) = again.result else {
        throw FuzzFinding(message: "recovery after recovery failed: \(again.result)")
      }
      try fuzzCheck(
        again.records == outcome.records,
        "second recovery saw \(again.records), first \(outcome.records)")
      try fuzzCheck(report.tornTail == nil, "second recovery cut a tail again")
      try fuzzCheck(report.salvaged == nil, "second recovery salvaged again")
    }
  }

  /// What one `recoverLog` call did.
  struct Outcome {
    var result: Result<RecoveryReport, LogError>
    var records: [SeenRecord]
  }

  static func recover(_ disk: MemoryFileSystem, mode: RecoveryMode, afterSequence: UInt64)
    throws -> Outcome
  {
    var records: [SeenRecord] = []
    var lastProgress: Int64 = 0
    var progressBroken: String?
    let options = RecoveryOptions(
      salvage: mode.options.salvage, afterSequence: afterSequence,
      readOnly: mode.options.readOnly)
    do {
      let report = try recoverLog(
        fileSystem: disk, directory: LogPlan.directory, options: options,
        progress: { done, total in
          if done < lastProgress || done > total || done < 0 {
            progressBroken = "progress \(done)/\(total) after \(lastProgress)"
          }
          lastProgress = done
        }
      ) { record in
        records.append(
          SeenRecord(
            sequence: record.sequence, type: record.type, payload: Array(record.payload),
            path: record.path, offset: record.offset))
      }
      if let progressBroken { throw FuzzFinding(message: progressBroken) }
      return Outcome(result: .success(report), records: records)
    } catch let error as LogError {
      return Outcome(result: .failure(error), records: records)
    }
  }

  static func compare(_ outcome: Outcome, _ expected: ReferenceOutcome, _ disk: MemoryFileSystem)
    throws
  {
    try fuzzCheck(
      outcome.records == expected.records,
      "records \(outcome.records), reference \(expected.records)")
    for (index, record) in outcome.records.enumerated() where index > 0 {
      try fuzzCheck(
        record.sequence == outcome.records[index - 1].sequence &+ 1,
        "records out of sequence: \(outcome.records)")
    }
    switch outcome.result {
    case .failure(.corruption(let path, let offset, let reason)):
      guard let corruption = expected.corruption else {
        throw FuzzFinding(message: "corruption at \(path):\(offset) (\(reason)); reference: none")
      }
      try fuzzCheck(
        corruption.path == path && corruption.offset == offset,
        "corruption at \(path):\(offset) (\(reason)), reference at \(corruption)")
    case .failure(.io(let error)):
      throw FuzzFinding(message: "I/O error from an in-memory file system: \(error)")
    case .success(let report):
      try fuzzCheck(
        expected.corruption == nil,
        "recovery succeeded; reference: corruption at \(String(describing: expected.corruption))"
      )
      try fuzzCheck(
        report.lastSequence == expected.lastSequence,
        "lastSequence \(report.lastSequence), reference \(expected.lastSequence)")
      try fuzzCheck(
        report.nextSequence == report.lastSequence &+ 1, "nextSequence \(report.nextSequence)")
      try fuzzCheck(
        report.recordsVisited == outcome.records.count,
        "recordsVisited \(report.recordsVisited), visited \(outcome.records.count)")
      try fuzzCheck(
        report.recordsTotal == expected.recordsTotal,
        "recordsTotal \(report.recordsTotal), reference \(expected.recordsTotal)")
      try fuzzCheck(
        report.tornTail == expected.tornTail,
        "tail cut \(String(describing: report.tornTail)), reference "
          + "\(String(describing: expected.tornTail))")
      let salvage = report.salvaged.map {
        "\($0.path):\($0.offset) dropped \($0.bytesDropped) bytes, \($0.segmentsDropped) files"
      }
      let expectedSalvage = expected.salvaged.map {
        "\($0.path):\($0.offset) dropped \($0.bytesDropped) bytes, \($0.segmentsDropped) files"
      }
      try fuzzCheck(
        salvage == expectedSalvage,
        "salvage \(salvage ?? "none"), reference \(expectedSalvage ?? "none")")
      let files = disk.allFiles()
      let expectedFiles = expected.files.sorted { $0.key < $1.key }
      try fuzzCheck(
        files.map { name(of: $0.path) } == expectedFiles.map(\.key)
          && files.map(\.bytes) == expectedFiles.map(\.value),
        "files after recovery: \(files.map { "\($0.path):\($0.bytes.count)" }), reference "
          + "\(expectedFiles.map { "\($0.key):\($0.value.count)" })")
    }
  }

  /// Calls the decoders directly on exactly-sized heap copies, so that AddressSanitizer sees any
  /// read past the end, and checks that what they accept re-encodes to the same bytes.
  static func checkDirectDecoding(_ plan: LogPlan) throws {
    for (index, file) in plan.files.enumerated() {
      let salt = plan.salts[min(index, plan.salts.count - 1)]
      let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: file.bytes.count, alignment: 1)
      defer { copy.deallocate() }
      file.bytes.withUnsafeBytes { copy.copyMemory(from: $0) }
      let buffer = UnsafeRawBufferPointer(copy)
      _ = SegmentFile.firstSequence(fromName: file.name)
      try fuzzCheck(
        SegmentFile.firstSequence(fromName: file.name)
          == ReferenceRecovery.firstSequence(ofName: file.name),
        "segment name \(file.name) parsed differently")
      if let header = try? SegmentHeader(decoding: buffer) {
        try fuzzCheck(
          header.encoded() == Array(file.bytes.prefix(segmentHeaderBytes)),
          "segment header does not re-encode to its bytes")
      }
      for offset in Set([segmentHeaderBytes, plan.probeOffset]) where offset <= buffer.count {
        try checkFrame(buffer, at: offset, salt: salt)
      }
    }
  }

  static func checkFrame(_ buffer: UnsafeRawBufferPointer, at offset: Int, salt: UInt64) throws {
    let seed = Frame.checksumSeed(salt: salt)
    let decoded = Frame.decode(buffer, at: offset, seed: seed, expectedSequence: nil)
    let reference = ReferenceRecovery.validFrame(Array(buffer), at: offset, salt: salt)
    switch decoded {
    case .valid(let header):
      try fuzzCheck(
        header.frameBytes <= buffer.count - offset, "valid frame runs past the buffer")
      guard let reference else {
        throw FuzzFinding(message: "Frame.decode accepts a frame the reference refuses")
      }
      try fuzzCheck(
        reference.sequence == header.sequence && reference.type == header.type
          && reference.length == header.payloadLength
          && reference.durableSequence == header.durableSequence,
        "Frame.decode reads \(header), reference \(reference)")
      var writer = ByteWriter()
      Frame.append(
        to: &writer, sequence: header.sequence, type: header.type, seed: seed,
        durableSequence: header.durableSequence
      ) {
        $0.appendBytes(
          UnsafeRawBufferPointer(
            rebasing: buffer[(offset + frameHeaderBytes)..<(offset + header.frameBytes)]))
      }
      try fuzzCheck(
        writer.bytes.elementsEqual(buffer[offset..<(offset + header.frameBytes)]),
        "a decoded frame does not re-encode to its bytes")
    case .incomplete(let needed):
      try fuzzCheck(
        needed > buffer.count - offset && reference == nil,
        "incomplete(\(needed)) with \(buffer.count - offset) bytes present")
    case .invalid:
      try fuzzCheck(reference == nil, "Frame.decode refuses a frame the reference accepts")
    }
  }

  private static func name(of path: String) -> String {
    String(path.split(separator: "/").last ?? "")
  }
}
