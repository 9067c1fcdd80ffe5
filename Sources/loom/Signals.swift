import Foundation

/// One line on stdout, flushed: scripts and `loom up` read these.
func announce(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}
