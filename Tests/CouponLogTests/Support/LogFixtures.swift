import CouponLog
import Foundation

/// A record as the tests write and read it.
struct TestRecord: Equatable, CustomStringConvertible {
  var sequence: UInt64
  var type: UInt8
  var payload: [UInt8]
  var offset: Int64 = -1

  static func == (lhs: TestRecord, rhs: TestRecord) -> Bool {
    lhs.sequence == rhs.sequence && lhs.type == rhs.type && lhs.payload == rhs.payload
  }

  var description: String { "#\(sequence) type \(type) (\(payload.count) bytes)" }
}

/// A deterministic payload for record `index`: its own text plus a few filler bytes, so records
/// have different lengths.
func testPayload(_ index: Int) -> [UInt8] {
  Array("record \(index)".utf8)
    + [UInt8](repeating: UInt8(truncatingIfNeeded: index), count: index % 7)
}

/// Writes `count` records with a `LogWriter` starting at `firstSequence`, flushing and syncing
/// every `batch` records, and returns what was written (with frame offsets unknown).
@discardableResult
func writeRecords(
  in directory: String, count: Int, firstSequence: UInt64 = 1, batch: Int = 4,
  options: LogWriterOptions = LogWriterOptions(), fileSystem: any FileSystem = RealFileSystem()
) throws -> [TestRecord] {
  let writer = try LogWriter(
    fileSystem: fileSystem, directory: directory, nextSequence: firstSequence, options: options)
  var written: [TestRecord] = []
  for index in 0..<count {
    let payload = testPayload(index)
    let type = UInt8(1 + index % 5)
    let sequence = writer.append(type: type) { $0.appendBytes(payload) }
    written.append(TestRecord(sequence: sequence, type: type, payload: payload))
    if (index + 1) % batch == 0, let flushed = try writer.flush() {
      try flushed.segment.syncData()
      // As the engine does: later frames record that these are durable.
      writer.durableSequence = flushed.lastSequence
    }
  }
  if let flushed = try writer.flush() {
    try flushed.segment.syncData()
    writer.durableSequence = flushed.lastSequence
  }
  return written
}

/// Recovers the log in `directory` and returns the report and every visited record.
func recoverRecords(
  in directory: String, options: RecoveryOptions = RecoveryOptions()
) throws -> (report: RecoveryReport, records: [TestRecord]) {
  var records: [TestRecord] = []
  let report = try recoverLog(
    fileSystem: RealFileSystem(), directory: directory, options: options
  ) { record in
    records.append(
      TestRecord(
        sequence: record.sequence, type: record.type, payload: Array(record.payload),
        offset: record.offset))
  }
  return (report, records)
}

/// The error `body` throws, if it is a `LogError.corruption`: its path, offset and reason.
func corruption(_ body: () throws -> Void) -> (path: String, offset: Int64, reason: String)? {
  do {
    try body()
  } catch LogError.corruption(let path, let offset, let reason) {
    return (path, offset, reason)
  } catch {
    return nil
  }
  return nil
}

/// The offsets of the frames of a segment file, found by walking it from its header.
func frameOffsets(_ path: String) throws -> [Int64] {
  let bytes = try fileBytes(path)
  var offsets: [Int64] = []
  var position = segmentHeaderBytes
  while position + frameHeaderBytes <= bytes.count {
    let length = bytes[(position + 4)..<(position + 8)].reversed().reduce(0) { $0 << 8 | Int($1) }
    offsets.append(Int64(position))
    position += frameHeaderBytes + length
  }
  return offsets
}
