@echo off
rem Start the GUI on Windows: first run creates venv\ and installs everything (torch from
rem PyTorch's CUDA wheel index unless TORCH_INDEX_URL says otherwise); later runs start in
rem seconds. All arguments pass through to kohya_gui.py.
call "%~dp0setup\setup.bat" || exit /b 1
pushd "%~dp0"
"venv\Scripts\python.exe" kohya_gui.py %*
set "RC=%ERRORLEVEL%"
popd & exit /b %RC%
