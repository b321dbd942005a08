import CouponLog
import Foundation

// Byte surgery on log files: the damage a crash or a bad disk does, done by hand.

/// The file's current length.
func fileSize(_ path: String) throws -> Int64 {
  let attributes = try FileManager.default.attributesOfItem(atPath: path)
  return (attributes[.size] as! NSNumber).int64Value
}

/// The file's bytes.
func fileBytes(_ path: String) throws -> [UInt8] {
  try RealFileSystem().readWholeFile(path)
}

/// Replaces the file's bytes.
func writeFileBytes(_ path: String, _ bytes: [UInt8]) throws {
  try Data(bytes).write(to: URL(fileURLWithPath: path))
}

/// Cuts the last `count` bytes off the file (a write torn at the end).
func truncateFile(_ path: String, by count: Int) throws {
  let bytes = try fileBytes(path)
  precondition(count <= bytes.count, "cannot cut \(count) bytes off \(bytes.count)")
  try writeFileBytes(path, Array(bytes.dropLast(count)))
}

/// Flips one bit of the byte at `offset` (bit rot, a stray write).
func flipBit(_ path: String, at offset: Int64, bit: Int = 0) throws {
  var bytes = try fileBytes(path)
  bytes[Int(offset)] ^= UInt8(1 << bit)
  try writeFileBytes(path, bytes)
}

/// Appends bytes to the file (garbage after the last frame).
func appendToFile(_ path: String, _ extra: [UInt8]) throws {
  try writeFileBytes(path, try fileBytes(path) + extra)
}

/// Appends `count` zero bytes (a file extended but never written, as after power loss).
func appendZeros(_ path: String, count: Int) throws {
  try appendToFile(path, [UInt8](repeating: 0, count: count))
}
