'use strict';
// The channel to the simulator: length-prefixed JSON frames on file descriptor 0 (a Unix
// socket the simulator made before starting this process, given as stdin). Nothing else is
// sent on it: console output is captured by globals.js, and `process.stdin` is replaced by an
// empty stream before app code loads. Every rule lives on the other side: this file only
// moves frames.

const net = require('net');

function open(onFrame, onClose) {
  const sock = new net.Socket({ fd: 0, readable: true, writable: true });
  let pending = Buffer.alloc(0);
  sock.on('data', (chunk) => {
    pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
    while (pending.length >= 4) {
      const len = pending.readUInt32BE(0);
      if (pending.length < 4 + len) break;
      const frame = JSON.parse(pending.subarray(4, 4 + len).toString('utf8'));
      pending = pending.subarray(4 + len);
      onFrame(frame);
    }
  });
  sock.on('close', onClose);
  sock.on('error', onClose);
  // The app must not read the channel as its stdin.
  const { Readable } = require('stream');
  const empty = new Readable({ read() { this.push(null); } });
  Object.defineProperty(process, 'stdin', { value: empty, configurable: false });
  return {
    send(frame) {
      const body = Buffer.from(JSON.stringify(frame), 'utf8');
      const head = Buffer.alloc(4);
      head.writeUInt32BE(body.length, 0);
      sock.write(Buffer.concat([head, body]));
    },
  };
}

module.exports = { open };
