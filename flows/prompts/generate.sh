#!/usr/bin/env bash
# Regenerate the example flows' prompts: 8 kHz, 16-bit, mono PCM WAV.
# Needs espeak-ng and sox (Debian: apt-get install -y espeak-ng sox). Run from anywhere.
set -euo pipefail
cd "$(dirname "$0")"

say() { # say NAME "TEXT"  (NAME may be in a subfolder: bank/welcome)
    local tmp="/tmp/callflow-prompt-${1//\//-}.wav"
    espeak-ng -v en-us -s 190 -w "$tmp" "$2"
    sox -D "$tmp" -r 8000 -b 16 -c 1 -e signed-integer "$1.wav" \
        silence 1 0.02 0.5% reverse silence 1 0.02 0.5% reverse norm -3
    rm "$tmp"
}

say welcome "Welcome to callflow support."
say menu "For sales, press 1. For support, press 2. To hear this again, press 9."
say sales "Connecting you to sales. Our team will be with you shortly."
say support "You have reached support. Please describe your problem after the beep."
say invalid "Sorry, that is not a valid choice."
say noinput "Sorry, I did not hear a choice."
say goodbye "Thank you for calling. Goodbye."
say echo "Echo test. Say something and you will hear it back. Press the pound key to hang up."

# flows/bank.py
say bank/welcome "Welcome to callflow bank."
say bank/menu "Press 1 for your balance, or 2 to leave a message."
say bank/pin "Please enter your four digit PIN."
say bank/pin_wrong "Sorry, that PIN is not right."
say bank/balance "Your balance is one hundred and twenty dollars."
say bank/locked "Sorry, we could not check your PIN."
say bank/message "Leave a message after the beep, then press hash."
say bank/saved "Thank you. Your message is saved."
say bank/nomessage "Sorry, I did not hear a message."
