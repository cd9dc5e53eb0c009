#!/usr/bin/env bash
# Makes rooms/media/demo/demo.webm: 60 s test pattern with the media time burned in as
# large text (HH:MM:SS.mmm) and a 100 ms beep at the start of every second.
# VP9 + Opus at 640x360, 30 fps. Needs Debian's ffmpeg and fonts-dejavu-core.
# The seek index (Cues) goes at the front: a browser that joins a paused room must
# seek before it has the whole file, and with the index at the end Chromium first has
# to fetch the file's end (a page whose media requests were held up stayed seeking for
# over 10 s in the buffering test, about one run in two).
set -euo pipefail
cd "$(dirname "$0")"
font=/usr/share/fonts/truetype/dejavu/DejaVuSansMono-Bold.ttf
ffmpeg -y -hide_banner -loglevel error \
  -f lavfi -i "testsrc2=size=640x360:rate=30:duration=60" \
  -f lavfi -i "sine=frequency=880:sample_rate=48000:duration=60" \
  -filter_complex "\
[0:v]drawbox=x=60:y=120:w=520:h=120:color=black@0.75:t=fill,\
drawtext=fontfile=${font}:fontsize=64:fontcolor=white:x=(w-tw)/2:y=145:\
text='%{pts\:hms}'[v];\
[1:a]volume='if(lt(mod(t,1),0.1),0.5,0)':eval=frame[a]" \
  -map "[v]" -map "[a]" \
  -c:v libvpx-vp9 -b:v 250k -deadline good -cpu-used 4 -row-mt 1 -g 30 \
  -c:a libopus -b:a 48k \
  -cues_to_front 1 \
  demo.webm
ls -l demo.webm
