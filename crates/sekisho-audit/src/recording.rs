//! Evidence from SSH and Telnet bastion sessions, as pure state machines: bytes in, records out.
//!
//! [`cast`] turns terminal traffic into an asciicast v2 recording, [`commands`] reconstructs the
//! command lines typed at a prompt, [`files`] reports what moved over SFTP and legacy scp, and
//! [`sealed`] encrypts a recording chunk by chunk for storage. Nothing here reads a socket, a
//! clock or a file: the relay's bastion feeds the bytes it forwards, passes the session time in,
//! and writes what comes out.

pub mod cast;
pub mod commands;
pub mod files;
pub mod sealed;
